/** @file
 * Unit tests of the blob index (engine/index.c): round trips, merging and
 * superseding of index files, and hostile files (truncated, bit-flipped,
 * wrong magic/version, overflowing counts, unsorted, misnamed, out-of-range
 * lengths).  Each test works in its own mkdtemp directory.  Timing a
 * million entries is a benchmark, not a test: bench/index_million.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bkr/crypto.h"
#include "bkr/crypto_store.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/hash.h"
#include "bkr/index.h"
#include "bkr/io.h"

#include "counting_store.h"
#include "testutil.h"

struct fx {
	char root[PATH_MAX]; /* the mkdtemp directory */
	char dir[PATH_MAX];  /* root/index (not created up front) */
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->root, sizeof(f->root), "/tmp/bkr-test-index-XXXXXX");
	if (!mkdtemp(f->root)) {
		free(f);
		return -1;
	}
	if (bkr_path_join(f->dir, sizeof(f->dir), f->root, "index") < 0) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tu_rmrf(f->root);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

/** A deterministic entry for number @p i (its id is SHA-256 of "blob <i>"). */
static void make_entry(uint64_t i, bkr_index_entry *e)
{
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "blob %llu", (unsigned long long)i);

	memset(e, 0, sizeof(*e));
	bkr_sha256(buf, (size_t)n, &e->id);
	for (int k = 0; k < BKR_PACK_ID_SIZE; k++)
		e->pack.b[k] = (uint8_t)(i * 7 + (uint64_t)k);
	e->offset = (uint32_t)(i * 4096 + 16);
	e->stored_len = (uint32_t)(i % BKR_BLOB_MAX);
	e->raw_len = (uint32_t)((i * 3) % BKR_BLOB_MAX);
	e->type = (uint8_t)(i & 1);
	e->flags = (uint8_t)(i % 3 == 0 ? BKR_BLOB_FLAG_ZLIB : 0);
}

static void assert_entry_equal(const bkr_index_entry *a, const bkr_index_entry *b)
{
	assert_memory_equal(a->id.b, b->id.b, BKR_ID_SIZE);
	assert_memory_equal(a->pack.b, b->pack.b, BKR_PACK_ID_SIZE);
	assert_int_equal(a->offset, b->offset);
	assert_int_equal(a->stored_len, b->stored_len);
	assert_int_equal(a->raw_len, b->raw_len);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->flags, b->flags);
}

/** Write entries [from, to) (in a scrambled order) as a new index file. */
static void write_range(const char *dir, uint64_t from, uint64_t to, const bkr_id *supersede,
			size_t nsup, bkr_id *file_id)
{
	bkr_index_builder *b = NULL;
	bkr_index_entry e;
	uint64_t n = to - from;

	assert_int_equal(bkr_index_builder_new(&b), 0);
	for (uint64_t k = 0; k < n; k++) {
		make_entry(from + (k * 7919) % n, &e); /* 7919 is prime: a permutation when n % 7919 != 0 */
		assert_int_equal(bkr_index_builder_add(b, &e), 0);
	}
	for (size_t i = 0; i < nsup; i++)
		assert_int_equal(bkr_index_builder_supersede(b, &supersede[i]), 0);
	assert_int_equal(bkr_index_builder_count(b), n);
	assert_int_equal(bkr_index_builder_write(b, dir, file_id), 0);
	bkr_index_builder_free(b);
}

static void file_path(const char *dir, const bkr_id *id, char *out)
{
	char name[BKR_ID_HEX + 4];
	bkr_id_to_hex(id, name);
	strcat(name, ".idx");
	assert_int_equal(bkr_path_join(out, PATH_MAX, dir, name), 0);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	assert_int_equal(bkr_io_read_file(path, 1u << 30, &buf, len), 0);
	return buf;
}

static void write_raw(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(bkr_io_write_full(fd, data, len, path), 0);
	close(fd);
}

/** Recompute the trailer and write @p buf under its correct hash name; path in @p out. */
static void reseal_and_write(const char *dir, uint8_t *buf, size_t len, char *out)
{
	bkr_id h;
	bkr_sha256(buf, len - BKR_ID_SIZE, &h);
	memcpy(buf + len - BKR_ID_SIZE, h.b, BKR_ID_SIZE);
	bkr_sha256(buf, len, &h);
	file_path(dir, &h, out);
	write_raw(out, buf, len);
}

/** Both bkr_index_open (directory) and bkr_index_open_file must refuse @p path. */
static void expect_bad(const char *dir, const char *path, int code, const char *what)
{
	bkr_index *idx = (bkr_index *)1;

	assert_int_equal(bkr_index_open_file(&idx, path), code);
	assert_null(idx);
	assert_non_null(strstr(bkr_error_message(), path));
	assert_non_null(strstr(bkr_error_message(), what));
	idx = (bkr_index *)1;
	assert_int_equal(bkr_index_open(&idx, dir), code);
	assert_null(idx);
	assert_non_null(strstr(bkr_error_message(), path));
	assert_non_null(strstr(bkr_error_message(), what));
}

/* ---- round trips -------------------------------------------------------- */

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	const uint64_t n = 10000;
	bkr_index *idx = NULL;
	bkr_index_entry want, got;
	bkr_id fid;
	char path[PATH_MAX];
	struct stat st;
	const bkr_id *files;
	size_t nfiles;

	write_range(f->dir, 0, n, NULL, 0, &fid);
	file_path(f->dir, &fid, path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, BKR_INDEX_HEADER_SIZE + n * BKR_INDEX_ENTRY_SIZE + BKR_ID_SIZE);

	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	assert_int_equal(bkr_index_count(idx), n);
	files = bkr_index_files(idx, &nfiles);
	assert_int_equal(nfiles, 1);
	assert_memory_equal(files[0].b, fid.b, BKR_ID_SIZE);
	for (uint64_t i = 0; i < n; i++) {
		make_entry(i, &want);
		memset(&got, 0xaa, sizeof(got));
		assert_int_equal(bkr_index_lookup(idx, &want.id, &got), 0);
		assert_entry_equal(&want, &got);
	}
	bkr_index_free(idx);

	/* the single file also opens on its own */
	assert_int_equal(bkr_index_open_file(&idx, path), 0);
	assert_int_equal(bkr_index_count(idx), n);
	bkr_index_free(idx);
}

static int count_sorted_cb(const bkr_index_entry *e, void *arg)
{
	bkr_id *prev = arg;
	if (!bkr_id_is_zero(prev) && bkr_id_cmp(prev, &e->id) >= 0)
		return -100;
	*prev = e->id;
	return 0;
}

static int stop_cb(const bkr_index_entry *e, void *arg)
{
	int *n = arg;
	return ++*n == 5 ? -42 : 0;
}

static void test_foreach_sorted(void **state)
{
	struct fx *f = *state;
	bkr_index *idx = NULL;
	bkr_id fid, prev;
	int n = 0;

	write_range(f->dir, 0, 3000, NULL, 0, &fid);
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	memset(&prev, 0, sizeof(prev));
	assert_int_equal(bkr_index_foreach(idx, count_sorted_cb, &prev), 0);
	assert_int_equal(bkr_index_foreach(idx, stop_cb, &n), -42);
	assert_int_equal(n, 5);
	bkr_index_free(idx);
}

static void test_lookup_miss(void **state)
{
	struct fx *f = *state;
	bkr_index *idx = NULL;
	bkr_index_entry e, got;
	bkr_id fid, lo, hi;

	write_range(f->dir, 0, 100, NULL, 0, &fid);
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	make_entry(100, &e); /* never added */
	assert_int_equal(bkr_index_lookup(idx, &e.id, &got), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "not in the index"));
	memset(lo.b, 0, sizeof(lo.b));
	memset(hi.b, 0xff, sizeof(hi.b));
	assert_int_equal(bkr_index_lookup(idx, &lo, &got), BKR_ENOTFOUND);
	assert_int_equal(bkr_index_lookup(idx, &hi, &got), BKR_ENOTFOUND);
	make_entry(99, &e);
	assert_int_equal(bkr_index_lookup(idx, &e.id, &got), 0);
	assert_entry_equal(&e, &got);
	bkr_index_free(idx);
}

static void test_duplicates(void **state)
{
	struct fx *f = *state;
	bkr_index_builder *b = NULL;
	bkr_index *idx = NULL;
	bkr_index_entry e, got;
	bkr_id fid, fid2;

	assert_int_equal(bkr_index_builder_new(&b), 0);
	make_entry(1, &e);
	for (int i = 0; i < 3; i++)
		assert_int_equal(bkr_index_builder_add(b, &e), 0);
	make_entry(2, &e);
	assert_int_equal(bkr_index_builder_add(b, &e), 0);
	assert_int_equal(bkr_index_builder_count(b), 4);
	assert_int_equal(bkr_index_builder_write(b, f->dir, &fid), 0);
	bkr_index_builder_free(b);

	/* a second file repeating blob 2 (another pack): both copies are usable */
	assert_int_equal(bkr_index_builder_new(&b), 0);
	make_entry(2, &e);
	e.pack.b[0] ^= 0xff;
	assert_int_equal(bkr_index_builder_add(b, &e), 0);
	assert_int_equal(bkr_index_builder_write(b, f->dir, &fid2), 0);
	bkr_index_builder_free(b);

	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	assert_int_equal(bkr_index_count(idx), 3); /* 2 unique in file 1, 1 in file 2 */
	make_entry(1, &e);
	assert_int_equal(bkr_index_lookup(idx, &e.id, &got), 0);
	assert_entry_equal(&e, &got);
	make_entry(2, &e);
	assert_int_equal(bkr_index_lookup(idx, &e.id, &got), 0);
	assert_memory_equal(got.id.b, e.id.b, BKR_ID_SIZE);
	assert_memory_equal(got.pack.b + 1, e.pack.b + 1, BKR_PACK_ID_SIZE - 1);
	bkr_index_free(idx);
}

/* bkr_index_files_holding: the files holding exactly an entry (blob, pack,
 * offset), newest first; a file holding the id twice is searched through both */
static void test_files_holding(void **state)
{
	struct fx *f = *state;
	bkr_index *idx = NULL;
	bkr_index_entry e, other, twice;
	bkr_id a, b, c, got[2];
	char path[PATH_MAX];
	uint8_t *buf;
	size_t len;

	write_range(f->dir, 0, 10, NULL, 0, &a);
	write_range(f->dir, 3, 4, NULL, 0, &b); /* entry 3 again, the same */
	/* a file of entries 7 and 20, then 20's slot made entry 7 in another pack */
	{
		bkr_index_builder *bld = NULL;
		assert_int_equal(bkr_index_builder_new(&bld), 0);
		make_entry(7, &e);
		assert_int_equal(bkr_index_builder_add(bld, &e), 0);
		make_entry(20, &e);
		assert_int_equal(bkr_index_builder_add(bld, &e), 0);
		assert_int_equal(bkr_index_builder_write(bld, f->dir, &c), 0);
		bkr_index_builder_free(bld);
	}
	file_path(f->dir, &c, path);
	buf = read_all(path, &len);
	assert_int_equal(unlink(path), 0);
	make_entry(7, &twice);
	twice.pack.b[0] ^= 0xff;
	{
		uint8_t *slot = buf + BKR_INDEX_HEADER_SIZE;
		if (memcmp(slot, twice.id.b, BKR_ID_SIZE) == 0) /* entry 7 first: the second slot is 20's */
			slot += BKR_INDEX_ENTRY_SIZE;
		memcpy(slot, twice.id.b, BKR_ID_SIZE);
		memcpy(slot + BKR_ID_SIZE, twice.pack.b, BKR_PACK_ID_SIZE);
		bkr_put_u32(slot + BKR_ID_SIZE + BKR_PACK_ID_SIZE, twice.offset);
	}
	reseal_and_write(f->dir, buf, len, path);
	free(buf);

	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	make_entry(3, &e);
	assert_int_equal(bkr_index_files_holding(idx, &e, got, 2), 2);
	assert_true((!bkr_id_cmp(&got[0], &a) && !bkr_id_cmp(&got[1], &b)) ||
		    (!bkr_id_cmp(&got[0], &b) && !bkr_id_cmp(&got[1], &a)));
	assert_int_equal(bkr_index_files_holding(idx, &e, got, 1), 2); /* counted past cap */
	assert_int_equal(bkr_index_files_holding(idx, &e, NULL, 0), 2);
	make_entry(5, &e);
	assert_int_equal(bkr_index_files_holding(idx, &e, got, 2), 1);
	assert_memory_equal(got[0].b, a.b, BKR_ID_SIZE);
	other = e;
	other.offset += 1; /* the blob at another offset: no file holds that entry */
	assert_int_equal(bkr_index_files_holding(idx, &other, got, 2), 0);
	make_entry(7, &e); /* in a and in the crafted file */
	assert_int_equal(bkr_index_files_holding(idx, &e, got, 2), 2);
	/* the crafted file's second copy of 7: found whichever copy the search lands on */
	assert_int_equal(bkr_index_files_holding(idx, &twice, got, 2), 1);
	assert_memory_not_equal(got[0].b, a.b, BKR_ID_SIZE);
	bkr_index_free(idx);
}

static void test_same_content_twice(void **state)
{
	struct fx *f = *state;
	bkr_id a, b;

	/* identical content gives the identical name; the second write is a no-op */
	write_range(f->dir, 0, 50, NULL, 0, &a);
	write_range(f->dir, 0, 50, NULL, 0, &b);
	assert_memory_equal(a.b, b.b, BKR_ID_SIZE);
}

static void test_two_files_merged(void **state)
{
	struct fx *f = *state;
	bkr_index *idx = NULL;
	bkr_index_entry want, got;
	bkr_id a, b;
	const bkr_id *files;
	size_t n;

	write_range(f->dir, 0, 1000, NULL, 0, &a);
	write_range(f->dir, 1000, 2500, NULL, 0, &b);
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	assert_int_equal(bkr_index_count(idx), 2500);
	files = bkr_index_files(idx, &n);
	assert_int_equal(n, 2);
	assert_true((bkr_id_cmp(&files[0], &a) == 0 && bkr_id_cmp(&files[1], &b) == 0) ||
		    (bkr_id_cmp(&files[0], &b) == 0 && bkr_id_cmp(&files[1], &a) == 0));
	for (uint64_t i = 0; i < 2500; i += 7) {
		make_entry(i, &want);
		assert_int_equal(bkr_index_lookup(idx, &want.id, &got), 0);
		assert_entry_equal(&want, &got);
	}
	bkr_index_free(idx);
}

static void test_supersede(void **state)
{
	struct fx *f = *state;
	bkr_index *idx = NULL;
	bkr_index_entry want, got;
	bkr_id a, b, sup[2];
	char pa[PATH_MAX], pb[PATH_MAX];
	uint8_t *old;
	size_t old_len, n;
	const bkr_id *files;

	write_range(f->dir, 0, 500, NULL, 0, &a);
	file_path(f->dir, &a, pa);
	old = read_all(pa, &old_len);

	/* b replaces a (and a file that never existed) */
	memset(&sup[1], 0x5a, sizeof(sup[1]));
	sup[0] = a;
	write_range(f->dir, 0, 800, sup, 2, &b);
	file_path(f->dir, &b, pb);
	assert_int_equal(access(pa, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(access(pb, F_OK), 0);

	/* a crash between publish and unlink leaves a: it must be ignored */
	write_raw(pa, old, old_len);
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	files = bkr_index_files(idx, &n);
	assert_int_equal(n, 1);
	assert_memory_equal(files[0].b, b.b, BKR_ID_SIZE);
	assert_int_equal(bkr_index_count(idx), 800);
	make_entry(799, &want);
	assert_int_equal(bkr_index_lookup(idx, &want.id, &got), 0);
	assert_entry_equal(&want, &got);
	bkr_index_free(idx);

	/* a superseded file is not even verified: corrupting it is harmless */
	old[100] ^= 1;
	write_raw(pa, old, old_len);
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	assert_int_equal(bkr_index_count(idx), 800);
	bkr_index_free(idx);
	free(old);
}

/*
 * More entries or superseded files than one index file may hold are written
 * as several files, each within the limits (readers refuse a file over 4 ×
 * the largest written), the superseding ones last; the old files go, every
 * entry stays.  (Limits lowered to 100 entries and 2 superseded ids.)
 */
static void test_split(void **state)
{
	struct fx *f = *state;
	bkr_index *idx = NULL;
	bkr_index_entry want, got;
	bkr_id old[3], last;
	char path[PATH_MAX];
	size_t n;
	const bkr_id *files;

	write_range(f->dir, 0, 50, NULL, 0, &old[0]);
	write_range(f->dir, 50, 100, NULL, 0, &old[1]);
	write_range(f->dir, 100, 150, NULL, 0, &old[2]);
	bkr_index_set_file_limits(100, 2);
	write_range(f->dir, 0, 350, old, 3, &last);
	bkr_index_set_file_limits(0, 0);

	for (int i = 0; i < 3; i++) {
		file_path(f->dir, &old[i], path);
		assert_int_equal(access(path, F_OK), -1);
	}
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	files = bkr_index_files(idx, &n);
	assert_int_equal(n, 5); /* 100 + 100 + 100 + 50 entries (2 superseded), then 1 superseded */
	for (size_t i = 0; i < n; i++) {
		uint8_t *buf;
		size_t len;
		file_path(f->dir, &files[i], path);
		buf = read_all(path, &len);
		assert_true(bkr_get_u64(buf + 16) <= 100);
		assert_true(bkr_get_u32(buf + 24) <= 2);
		free(buf);
	}
	assert_int_equal(bkr_index_count(idx), 350);
	for (uint64_t i = 0; i < 350; i++) {
		make_entry(i, &want);
		assert_int_equal(bkr_index_lookup(idx, &want.id, &got), 0);
		assert_entry_equal(&want, &got);
	}
	bkr_index_free(idx);
}

/* Publish entries [from, to) through store @p s, superseding @p nsup ids. */
static void publish_range(bkr_store *s, uint64_t from, uint64_t to, const bkr_id *supersede, size_t nsup, bkr_id *file_id)
{
	bkr_index_builder *b = NULL;
	bkr_index_entry e;

	assert_int_equal(bkr_index_builder_new(&b), 0);
	for (uint64_t i = from; i < to; i++) {
		make_entry(i, &e);
		assert_int_equal(bkr_index_builder_add(b, &e), 0);
	}
	for (size_t i = 0; i < nsup; i++)
		assert_int_equal(bkr_index_builder_supersede(b, &supersede[i]), 0);
	assert_int_equal(bkr_index_builder_publish(b, s, "index/", file_id), 0);
	bkr_index_builder_free(b);
}

/*
 * A load reads each index file once, whole: its superseded list comes from
 * the same bytes as its entries.  A sealed file is opened whole by any read,
 * so a header read first and the whole file then paid two reads and two
 * decryptions of every index file on every load (three with a superseded
 * list), in every command on an encrypted repository.
 */
static void test_each_file_read_once(void **state)
{
	struct fx *f = *state;
	static const uint8_t enc[BKR_CRYPTO_KEY_SIZE] = { 1 }, mac[BKR_CRYPTO_KEY_SIZE] = { 2 };
	static const uint8_t repo[BKR_CRYPTO_REPO_ID_SIZE] = { 3 };
	bkr_index_entry want, got;
	bkr_crypto *keys = NULL;
	bkr_store *sealed = NULL;
	bkr_index *idx = NULL;
	bkr_id a, b, sup;
	counting *c;

	for (int keyed = 0; keyed < 2; keyed++) {
		tu_rmrf(f->dir);
		c = counting_open(f->root);
		sealed = &c->base;
		if (keyed) {
			assert_int_equal(bkr_crypto_new(&keys, enc, mac, repo), 0);
			assert_int_equal(bkr_crypto_store_new(&sealed, &c->base, keys), 0);
			bkr_crypto_free(keys);
		}
		assert_int_equal(bkr_store_prepare(sealed, "index"), 0);
		/* a, and b that supersedes a file that never existed */
		publish_range(sealed, 0, 300, NULL, 0, &a);
		memset(&sup, 0x5a, sizeof(sup));
		publish_range(sealed, 300, 700, &sup, 1, &b);

		counting_watch(c, "index");
		c->gets = c->ranges = c->stats = 0;
		assert_int_equal(bkr_index_load(&idx, sealed, "index/", 0), 0);
		assert_int_equal(bkr_index_count(idx), 700);
		make_entry(650, &want);
		assert_int_equal(bkr_index_lookup(idx, &want.id, &got), 0);
		assert_entry_equal(&want, &got);
		bkr_index_free(idx);
		/* one listing, one whole read of each file, nothing else */
		assert_int_equal(c->folder_lists, 1);
		assert_int_equal(c->folder_gets, 2);
		assert_int_equal(requests(c), 2);
		bkr_store_free(sealed);
	}
}

/*
 * bkr_index_unchanged, what lets a backup skip its second load of the index
 * (the one after taking the lock) when nothing changed: true for the files
 * the index was loaded from, whatever leftovers appear beside them; false
 * once a file is added, removed or rewritten in place under its name, and
 * always false on a store that gives no stamps (the counting store), which
 * cannot tell.
 */
static void test_unchanged(void **state)
{
	struct fx *f = *state;
	bkr_store *s = NULL;
	bkr_index *idx = NULL;
	char pa[PATH_MAX], junk[PATH_MAX];
	uint8_t *buf;
	size_t len;
	bool same = false;
	bkr_id a, b;
	counting *c;

	assert_int_equal(bkr_store_local_open(&s, f->root, 0), 0);
	assert_int_equal(bkr_store_prepare(s, "index"), 0);
	/* empty, then one file */
	assert_int_equal(bkr_index_load(&idx, s, "index/", 0), 0);
	assert_int_equal(bkr_index_unchanged(idx, s, "index/", &same), 0);
	assert_true(same);
	publish_range(s, 0, 300, NULL, 0, &a);
	assert_int_equal(bkr_index_unchanged(idx, s, "index/", &same), 0);
	assert_false(same);
	bkr_index_free(idx);
	assert_int_equal(bkr_index_load(&idx, s, "index/", 0), 0);
	assert_int_equal(bkr_index_unchanged(idx, s, "index/", &same), 0);
	assert_true(same);
	/* leftovers that are not index files change nothing */
	assert_int_equal(bkr_path_join(junk, sizeof(junk), f->dir, ".tmp-x.idx"), 0);
	write_raw(junk, "garbage", 7);
	assert_int_equal(bkr_path_join(junk, sizeof(junk), f->dir, "README"), 0);
	write_raw(junk, "hello", 5);
	assert_int_equal(bkr_index_unchanged(idx, s, "index/", &same), 0);
	assert_true(same);
	/* a second file */
	publish_range(s, 300, 700, NULL, 0, &b);
	assert_int_equal(bkr_index_unchanged(idx, s, "index/", &same), 0);
	assert_false(same);
	bkr_index_free(idx);
	assert_int_equal(bkr_index_load(&idx, s, "index/", 0), 0);
	assert_int_equal(bkr_index_unchanged(idx, s, "index/", &same), 0);
	assert_true(same);
	/* a file rewritten in place with the same bytes (a copy restored over it): another inode */
	file_path(f->dir, &a, pa);
	buf = read_all(pa, &len);
	assert_int_equal(unlink(pa), 0);
	write_raw(pa, buf, len);
	free(buf);
	assert_int_equal(bkr_index_unchanged(idx, s, "index/", &same), 0);
	assert_false(same);
	bkr_index_free(idx);
	assert_int_equal(bkr_index_load(&idx, s, "index/", 0), 0);
	/* a file gone */
	file_path(f->dir, &b, pa);
	assert_int_equal(unlink(pa), 0);
	assert_int_equal(bkr_index_unchanged(idx, s, "index/", &same), 0);
	assert_false(same);
	bkr_index_free(idx);
	bkr_store_free(s);

	/* a store without stamps: never known to be the same */
	c = counting_open(f->root);
	assert_int_equal(bkr_index_load(&idx, &c->base, "index/", 0), 0);
	assert_int_equal(bkr_index_count(idx), 300);
	assert_int_equal(bkr_index_unchanged(idx, &c->base, "index/", &same), 0);
	assert_false(same);
	bkr_index_free(idx);
	bkr_store_free(&c->base);
}

static void test_empty_and_missing_dir(void **state)
{
	struct fx *f = *state;
	bkr_index *idx = NULL;
	bkr_index_entry e, got;
	size_t n = 99;
	char junk[PATH_MAX];

	/* missing */
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	assert_non_null(idx);
	assert_int_equal(bkr_index_count(idx), 0);
	bkr_index_files(idx, &n);
	assert_int_equal(n, 0);
	make_entry(1, &e);
	assert_int_equal(bkr_index_lookup(idx, &e.id, &got), BKR_ENOTFOUND);
	bkr_index_free(idx);

	/* empty, plus leftovers that are not index files */
	assert_int_equal(mkdir(f->dir, 0755), 0);
	assert_int_equal(bkr_path_join(junk, sizeof(junk), f->dir, ".tmp-0123456789abcdef"), 0);
	write_raw(junk, "garbage", 7);
	assert_int_equal(bkr_path_join(junk, sizeof(junk), f->dir, ".tmp-x.idx"), 0);
	write_raw(junk, "garbage", 7);
	assert_int_equal(bkr_path_join(junk, sizeof(junk), f->dir, "README"), 0);
	write_raw(junk, "hello", 5);
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	assert_int_equal(bkr_index_count(idx), 0);
	bkr_index_free(idx);

	/* an index with no entries at all is valid */
	bkr_id fid;
	write_range(f->dir, 0, 0, NULL, 0, &fid);
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	bkr_index_files(idx, &n);
	assert_int_equal(n, 1);
	assert_int_equal(bkr_index_count(idx), 0);
	bkr_index_free(idx);
}

static void test_builder_rejects(void **state)
{
	bkr_index_builder *b = NULL;
	bkr_index_entry e;

	assert_int_equal(bkr_index_builder_new(&b), 0);
	make_entry(1, &e);
	e.raw_len = BKR_BLOB_MAX + 1;
	assert_int_equal(bkr_index_builder_add(b, &e), BKR_EINVAL);
	make_entry(1, &e);
	e.type = 2;
	assert_int_equal(bkr_index_builder_add(b, &e), BKR_EINVAL);
	assert_int_equal(bkr_index_builder_count(b), 0);
	bkr_index_builder_free(b);
	bkr_index_builder_free(NULL);
	bkr_index_free(NULL);
}

struct thr {
	const bkr_index *idx;
	int failures;
};

static void *lookup_thread(void *arg)
{
	struct thr *t = arg;
	bkr_index_entry want, got;

	for (uint64_t i = 0; i < 2000; i++) {
		make_entry(i, &want);
		if (bkr_index_lookup(t->idx, &want.id, &got) != 0 || got.offset != want.offset)
			t->failures++;
	}
	return NULL;
}

static void test_concurrent_lookups(void **state)
{
	struct fx *f = *state;
	bkr_index *idx = NULL;
	pthread_t th[4];
	struct thr t[4];
	bkr_id fid;

	write_range(f->dir, 0, 2000, NULL, 0, &fid);
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	for (int i = 0; i < 4; i++) {
		t[i] = (struct thr){ idx, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, lookup_thread, &t[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].failures, 0);
	}
	bkr_index_free(idx);
}

/* ---- hostile files ------------------------------------------------------ */

/** A valid 20-entry file; its bytes in *buf (malloc'd) and its path in @p path. */
static void valid_file(struct fx *f, uint8_t **buf, size_t *len, char *path)
{
	bkr_id fid;
	write_range(f->dir, 0, 20, NULL, 0, &fid);
	file_path(f->dir, &fid, path);
	*buf = read_all(path, len);
}

static void test_truncated(void **state)
{
	struct fx *f = *state;
	uint8_t *buf;
	size_t len;
	char path[PATH_MAX];
	const size_t cuts[] = { 0, 1, 8, 31, 32, 63, 64, 100, 0 /* len-1 */, 0 /* len-32 */, 0 /* len-33 */ };
	size_t ncuts = sizeof(cuts) / sizeof(cuts[0]);

	valid_file(f, &buf, &len, path);
	for (size_t i = 0; i < ncuts; i++) {
		size_t cut = cuts[i];
		if (i == ncuts - 3)
			cut = len - 1;
		else if (i == ncuts - 2)
			cut = len - 32;
		else if (i == ncuts - 1)
			cut = len - 33;
		write_raw(path, buf, cut);
		expect_bad(f->dir, path, BKR_ECORRUPT, cut < 8 ? "truncated" : cut < 64 ? "truncated" :
			   "do not match the file size");
	}
	free(buf);
}

static void test_bit_flip(void **state)
{
	struct fx *f = *state;
	uint8_t *buf;
	size_t len;
	char path[PATH_MAX];

	valid_file(f, &buf, &len, path);
	/* entry 5's pack id, then entry 19's raw length, then the trailer itself */
	const size_t at[] = { BKR_INDEX_HEADER_SIZE + 5 * BKR_INDEX_ENTRY_SIZE + 40,
			      BKR_INDEX_HEADER_SIZE + 19 * BKR_INDEX_ENTRY_SIZE + 57, len - 1 };
	for (size_t i = 0; i < 3; i++) {
		buf[at[i]] ^= 0x10;
		write_raw(path, buf, len);
		expect_bad(f->dir, path, BKR_ECORRUPT, "trailer checksum mismatch");
		buf[at[i]] ^= 0x10;
	}
	free(buf);
}

static void test_bad_magic_version(void **state)
{
	struct fx *f = *state;
	uint8_t *buf;
	size_t len;
	char path[PATH_MAX], p2[PATH_MAX];

	valid_file(f, &buf, &len, path);
	unlink(path);
	buf[0] = 'X';
	reseal_and_write(f->dir, buf, len, p2);
	expect_bad(f->dir, p2, BKR_ECORRUPT, "bad magic");
	unlink(p2);
	buf[0] = 'B';

	bkr_put_u32(buf + 8, 2);
	reseal_and_write(f->dir, buf, len, p2);
	expect_bad(f->dir, p2, BKR_EUNSUPPORTED, "unsupported index version 2");
	unlink(p2);
	bkr_put_u32(buf + 8, 1);

	bkr_put_u32(buf + 12, 4);
	reseal_and_write(f->dir, buf, len, p2);
	expect_bad(f->dir, p2, BKR_EUNSUPPORTED, "flags");
	free(buf);
}

static void test_count_overflow(void **state)
{
	struct fx *f = *state;
	uint8_t *buf;
	size_t len;
	char path[PATH_MAX], p2[PATH_MAX];
	const uint64_t counts[] = { UINT64_MAX, UINT64_MAX / 64 + 1, (UINT64_MAX / 64 + 1) + 20, 21, 19 };

	valid_file(f, &buf, &len, path);
	unlink(path);
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		bkr_put_u64(buf + 16, counts[i]);
		reseal_and_write(f->dir, buf, len, p2);
		expect_bad(f->dir, p2, BKR_ECORRUPT, "do not match the file size");
		unlink(p2);
	}
	/* superseded count overflowing too */
	bkr_put_u64(buf + 16, 20);
	bkr_put_u32(buf + 24, UINT32_MAX);
	reseal_and_write(f->dir, buf, len, p2);
	expect_bad(f->dir, p2, BKR_ECORRUPT, "do not match the file size");
	free(buf);
}

/* A file larger than any the writer writes (a sparse one, its header's counts
 * matching its size) is damaged, refused before it is read: never 4 GiB read,
 * allocated and hashed per command. */
static void test_too_large(void **state)
{
	struct fx *f = *state;
	uint8_t h[BKR_INDEX_HEADER_SIZE] = { 0 };
	uint64_t size = BKR_INDEX_FILE_MAX + BKR_INDEX_ENTRY_SIZE;
	char path[PATH_MAX];
	int fd;

	assert_int_equal(mkdir(f->dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/%064d.idx", f->dir, 0);
	memcpy(h, BKR_INDEX_MAGIC, 8);
	bkr_put_u32(h + 8, BKR_INDEX_VERSION);
	bkr_put_u64(h + 16, (size - BKR_INDEX_HEADER_SIZE - BKR_ID_SIZE) / BKR_INDEX_ENTRY_SIZE);
	assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
	assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	close(fd);
	expect_bad(f->dir, path, BKR_ECORRUPT, "too large");
	unlink(path);
}

/*
 * Garbage index files below the bound, larger than a load reads at once
 * (4 MiB): holes of 64 MiB with no header, and with an index file's header
 * whose counts declare 2 entries.  A load judges them before their bodies
 * are read: by the header (a ranged read) in a plain repository, by the
 * size in an encrypted one (GCM opens a sealed file only whole), where a
 * garbage file of a possible size is still read whole.  Each is left out
 * (BKR_INDEX_SKIP_DAMAGED) with a message naming it; a good file beside
 * them is read once, whole.
 */
static void test_large_garbage_judged_first(void **state)
{
	struct fx *f = *state;
	static const uint8_t enc[BKR_CRYPTO_KEY_SIZE] = { 1 }, mac[BKR_CRYPTO_KEY_SIZE] = { 2 };
	static const uint8_t repo[BKR_CRYPTO_REPO_ID_SIZE] = { 3 };
	const off_t size = (off_t)64 << 20;
	uint8_t h[BKR_INDEX_HEADER_SIZE] = { 0 };
	char path[PATH_MAX];
	const char *const *skipped;
	bkr_crypto *keys = NULL;
	bkr_store *s = NULL;
	bkr_index *idx = NULL;
	size_t n;
	bkr_id a;
	counting *c;
	int fd;

	memcpy(h, BKR_INDEX_MAGIC, 8);
	bkr_put_u32(h + 8, BKR_INDEX_VERSION);
	bkr_put_u64(h + 16, 2);
	for (int keyed = 0; keyed < 2; keyed++) {
		tu_rmrf(f->dir);
		c = counting_open(f->root);
		s = &c->base;
		if (keyed) {
			assert_int_equal(bkr_crypto_new(&keys, enc, mac, repo), 0);
			assert_int_equal(bkr_crypto_store_new(&s, &c->base, keys), 0);
			bkr_crypto_free(keys);
		}
		assert_int_equal(bkr_store_prepare(s, "index"), 0);
		publish_range(s, 0, 300, NULL, 0, &a);
		for (int k = 0; k < 2; k++) {
			snprintf(path, sizeof(path), "%s/%064d.idx", f->dir, k);
			assert_true((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644)) >= 0);
			if (k == 1)
				assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
			/* sealed: a size no index file has once opened (36 bytes of sealing) */
			assert_int_equal(ftruncate(fd, size + (keyed ? 5 : 0)), 0);
			close(fd);
		}
		c->got = 0;
		assert_int_equal(bkr_index_load(&idx, s, "index/", BKR_INDEX_SKIP_DAMAGED), 0);
		assert_int_equal(bkr_index_count(idx), 300);
		skipped = bkr_index_skipped(idx, &n);
		assert_int_equal(n, 2);
		if (keyed) {
			assert_non_null(strstr(skipped[0], "0.idx: 67108833 bytes once opened, not the size of an index file"));
			assert_non_null(strstr(skipped[1], "1.idx: 67108833 bytes once opened"));
		} else {
			assert_non_null(strstr(skipped[0], "0.idx: bad magic"));
			assert_non_null(strstr(skipped[1], "1.idx: header counts (2 entries, 0 superseded) do not match "
							   "the file size 67108864"));
		}
		/* the good file's bytes, not the garbage's 128 MiB */
		assert_true(c->got < (1u << 20));
		bkr_index_free(idx);
		bkr_store_free(s);
	}
}

static void test_unsorted(void **state)
{
	struct fx *f = *state;
	uint8_t *buf, tmp[BKR_INDEX_ENTRY_SIZE];
	size_t len;
	char path[PATH_MAX], p2[PATH_MAX];
	uint8_t *e3, *e4;

	valid_file(f, &buf, &len, path);
	unlink(path);
	e3 = buf + BKR_INDEX_HEADER_SIZE + 3 * BKR_INDEX_ENTRY_SIZE;
	e4 = e3 + BKR_INDEX_ENTRY_SIZE;
	memcpy(tmp, e3, sizeof(tmp));
	memcpy(e3, e4, sizeof(tmp));
	memcpy(e4, tmp, sizeof(tmp));
	reseal_and_write(f->dir, buf, len, p2);
	expect_bad(f->dir, p2, BKR_ECORRUPT, "entry 4 is out of order");
	free(buf);
}

/* Two entries for one blob in one file (sorted side by side, which readers
 * take; the writer never writes it): each is a copy readers try in turn, as
 * entries in two files are.  Only the one the search landed on was tried. */
static void test_same_id_twice_in_a_file(void **state)
{
	struct fx *f = *state;
	bkr_index *idx = NULL;
	bkr_index_entry got[2];
	uint8_t *buf, *p3, pack3[BKR_PACK_ID_SIZE], pack4[BKR_PACK_ID_SIZE];
	size_t len;
	char path[PATH_MAX], p2[PATH_MAX];
	bkr_id id;

	valid_file(f, &buf, &len, path);
	unlink(path);
	/* entry 4 names entry 3's blob too (with its own pack and offset) */
	p3 = buf + BKR_INDEX_HEADER_SIZE + 3 * BKR_INDEX_ENTRY_SIZE;
	memcpy(p3 + BKR_INDEX_ENTRY_SIZE, p3, BKR_ID_SIZE);
	memcpy(id.b, p3, BKR_ID_SIZE);
	memcpy(pack3, p3 + BKR_ID_SIZE, BKR_PACK_ID_SIZE);
	memcpy(pack4, p3 + BKR_INDEX_ENTRY_SIZE + BKR_ID_SIZE, BKR_PACK_ID_SIZE);
	assert_memory_not_equal(pack3, pack4, BKR_PACK_ID_SIZE);
	reseal_and_write(f->dir, buf, len, p2);
	free(buf);
	assert_int_equal(bkr_index_open(&idx, f->dir), 0);
	assert_int_equal(bkr_index_lookup_nth(idx, &id, 0, &got[0]), 0);
	assert_int_equal(bkr_index_lookup_nth(idx, &id, 1, &got[1]), 0);
	assert_int_equal(bkr_index_lookup_nth(idx, &id, 2, &got[0]), BKR_ENOTFOUND);
	assert_int_equal(bkr_index_copies(idx, &id), 2);
	assert_int_equal(bkr_index_copies(idx, &(bkr_id){ { 0x01 } }), 0); /* an id no file holds */
	assert_int_equal(bkr_index_lookup_nth(idx, &id, 0, &got[0]), 0);
	assert_memory_equal(got[0].id.b, id.b, BKR_ID_SIZE);
	assert_memory_equal(got[1].id.b, id.b, BKR_ID_SIZE);
	assert_memory_equal(got[0].pack.b, pack3, BKR_PACK_ID_SIZE); /* first to last */
	assert_memory_equal(got[1].pack.b, pack4, BKR_PACK_ID_SIZE);
	bkr_index_free(idx);
}

static void test_name_not_hash(void **state)
{
	struct fx *f = *state;
	uint8_t *buf;
	size_t len;
	char path[PATH_MAX], p2[PATH_MAX];
	bkr_id other;

	valid_file(f, &buf, &len, path);
	unlink(path);
	memset(other.b, 0x42, sizeof(other.b));
	file_path(f->dir, &other, p2);
	write_raw(p2, buf, len);
	expect_bad(f->dir, p2, BKR_ECORRUPT, "does not match its hash");
	unlink(p2);

	assert_int_equal(bkr_path_join(p2, sizeof(p2), f->dir, "notahash.idx"), 0);
	write_raw(p2, buf, len);
	expect_bad(f->dir, p2, BKR_ECORRUPT, "does not match its hash");
	free(buf);
}

static void test_lengths_and_type(void **state)
{
	struct fx *f = *state;
	uint8_t *buf;
	size_t len;
	char path[PATH_MAX], p2[PATH_MAX];
	uint8_t *e7;

	valid_file(f, &buf, &len, path);
	unlink(path);
	e7 = buf + BKR_INDEX_HEADER_SIZE + 7 * BKR_INDEX_ENTRY_SIZE;

	bkr_put_u32(e7 + 56, BKR_BLOB_MAX + 1); /* raw length */
	reseal_and_write(f->dir, buf, len, p2);
	expect_bad(f->dir, p2, BKR_ECORRUPT, "entry 7: blob length over");
	unlink(p2);
	bkr_put_u32(e7 + 56, 10);

	bkr_put_u32(e7 + 52, UINT32_MAX); /* stored length */
	reseal_and_write(f->dir, buf, len, p2);
	expect_bad(f->dir, p2, BKR_ECORRUPT, "entry 7: blob length over");
	unlink(p2);
	bkr_put_u32(e7 + 52, 10);

	e7[60] = 9; /* type */
	reseal_and_write(f->dir, buf, len, p2);
	expect_bad(f->dir, p2, BKR_ECORRUPT, "entry 7: bad blob type 9");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreach_sorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lookup_miss, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_holding, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_content_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_files_merged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_supersede, setup, teardown),
		cmocka_unit_test_setup_teardown(test_each_file_read_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unchanged, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_and_missing_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_builder_rejects, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_lookups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bit_flip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_magic_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_garbage_judged_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_split, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsorted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_same_id_twice_in_a_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_name_not_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lengths_and_type, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
