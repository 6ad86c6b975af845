/** @file
 * Unit tests of the caching store (engine/store_cache.c) over a local store
 * wrapped in a counting store (every read that reaches it is counted):
 * whole objects fetched once and kept across processes, tree packs read
 * whole, data packs in blocks with few requests, cache files torn,
 * truncated, damaged or removed (fetched again, never served), leftovers of
 * a killed write, the size bound, many threads reading at once (each block
 * fetched once), pass-through of listings and writes, one process per cache
 * directory, the default directory, and a repository read through the cache
 * whose cached pack is damaged after its check (an error, never wrong bytes).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/hash.h"
#include "bkr/repo.h"
#include "bkr/store.h"
#include "bkr/store_cache.h"
#include "bkr/writer.h"

#include "counting_store.h"
#include "testutil.h"

#define MIB (1u << 20)

/* ---- fixture ------------------------------------------------------------------ */

struct fixture {
	char dir[256];
	char repo[300];
	char cache[300];
	counting *c;   /* borrowed: owned by s */
	bkr_store *s;  /* the caching store */
	uint8_t *pack; /* the bytes of data/ab/pack (PACK_LEN) */
};

#define PACK "data/ab/00112233445566778899aabbccddeeff.pack"
#define PACK_LEN (5 * MIB + 12345)
#define TREE "tree/cd/ffeeddccbbaa99887766554433221100.pack"

static void open_cache(struct fixture *f, uint64_t max)
{
	bkr_store_free(f->s);
	f->c = counting_open(f->repo);
	assert_int_equal(bkr_store_cache_open(&f->s, &f->c->base, f->cache, max), 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	bkr_store *local;
	if (!f || tu_mkdtemp_in(f->dir, sizeof(f->dir), "test-store-cache") < 0)
		return -1;
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->cache, sizeof(f->cache), "%s/cache", f->dir);
	if (!(f->pack = malloc(PACK_LEN)) || bkr_random_bytes(f->pack, PACK_LEN) < 0)
		return -1;
	if (bkr_store_local_open(&local, f->repo, BKR_STORE_CREATE) < 0 ||
	    bkr_store_put(local, PACK, f->pack, PACK_LEN) < 0 ||
	    bkr_store_put(local, TREE, f->pack, 100000) < 0 ||
	    bkr_store_put(local, "index/0123.idx", "index bytes", 11) < 0 ||
	    bkr_store_put(local, "config.json", "{}", 2) < 0)
		return -1;
	bkr_store_free(local);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	bkr_store_free(f->s);
	tu_rmrf(f->dir);
	free(f->pack);
	free(f);
	return 0;
}

/* read [off, off+len) of PACK through the cache and compare */
static void read_pack(struct fixture *f, uint64_t off, size_t len)
{
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	assert_int_equal(bkr_store_get_range(f->s, PACK, off, len, buf, 0), 0);
	assert_memory_equal(buf, f->pack + off, len);
	free(buf);
}

/* "<cache root>/<rel>" */
static void cache_path(struct fixture *f, const char *rel, char *out)
{
	snprintf(out, PATH_MAX, "%s/%s", bkr_store_cache_root(f->s), rel);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_whole_object_kept(void **state)
{
	struct fixture *f = *state;
	uint8_t *d;
	size_t n;

	open_cache(f, 0);
	assert_true(bkr_store_is_cache(f->s));
	assert_string_equal(bkr_store_location(f->s), f->repo);
	for (int k = 0; k < 3; k++) {
		assert_int_equal(bkr_store_get(f->s, "index/0123.idx", 100, &d, &n), 0);
		assert_int_equal(n, 11);
		assert_memory_equal(d, "index bytes", 12); /* NUL-terminated */
		free(d);
	}
	assert_int_equal(f->c->gets, 1);
	/* too large for the caller: the same error as the store's */
	assert_int_equal(bkr_store_get(f->s, "index/0123.idx", 5, &d, &n), BKR_ECORRUPT);
	/* a new process: the file on disk is used, no request */
	open_cache(f, 0);
	assert_int_equal(bkr_store_get(f->s, "index/0123.idx", 100, &d, &n), 0);
	assert_memory_equal(d, "index bytes", 11);
	free(d);
	assert_int_equal(requests(f->c), 0);
	/* config.json is not cached: it goes to the store each time */
	for (int k = 0; k < 2; k++) {
		assert_int_equal(bkr_store_get(f->s, "config.json", 100, &d, &n), 0);
		free(d);
	}
	assert_int_equal(f->c->gets, 2);
	/* a missing object is the store's BKR_ENOTFOUND */
	assert_int_equal(bkr_store_get(f->s, "index/gone.idx", 100, &d, &n), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "gone.idx"));
}

static void test_tree_pack_read_whole(void **state)
{
	struct fixture *f = *state;
	uint8_t buf[4096];

	open_cache(f, 0);
	for (int64_t off = 90000; off >= 0; off -= 7000) { /* backwards, like a walk */
		assert_int_equal(bkr_store_get_range(f->s, TREE, off, 1000, buf, BKR_STORE_READ_AHEAD), 0);
		assert_memory_equal(buf, f->pack + off, 1000);
	}
	assert_int_equal(f->c->gets, 1);
	assert_int_equal(f->c->ranges, 0);
	assert_int_equal(bkr_store_get_range(f->s, TREE, 99999, 2, buf, 0), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "truncated"));
}

static void test_data_blocks(void **state)
{
	struct fixture *f = *state;
	bkr_store_cache_stats st;
	uint8_t b;

	open_cache(f, 0);
	read_pack(f, 10, 100);                    /* stat + blocks 0-3 in one request */
	assert_int_equal(f->c->stats, 1);
	assert_int_equal(f->c->ranges, 1);
	read_pack(f, 2 * MIB - 50, MIB + 100);    /* blocks 1-3: cached */
	assert_int_equal(f->c->ranges, 1);
	read_pack(f, 3 * MIB + 5, 2 * MIB + 12000); /* block 3 cached; 4 and 5 (the end) in one */
	assert_int_equal(f->c->ranges, 2);
	assert_int_equal(f->c->stats, 1);
	read_pack(f, 0, PACK_LEN);
	assert_int_equal(requests(f->c), 3);
	bkr_store_cache_stats_get(f->s, &st);
	assert_int_equal(st.requests, 3);
	assert_int_equal(st.fetched, PACK_LEN);
	assert_int_equal(st.files, 6);
	/* past the end: the store's error, no request */
	assert_int_equal(bkr_store_get_range(f->s, PACK, PACK_LEN, 1, &b, 0), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "truncated"));
	/* a new process reads the blocks from disk */
	open_cache(f, 0);
	read_pack(f, 0, PACK_LEN);
	assert_int_equal(f->c->ranges, 0);
	assert_int_equal(f->c->stats, 1); /* the size of the pack, once */
}

/* a pack replaced in the store by another of the same size (a damaged copy
 * put right by hand; later, so its last-modified time differs): a new
 * process drops the blocks kept for the old one and fetches them again */
/*
 * The pack read through a cache, then replaced in the store by other bytes
 * of its size, its mtime @p later seconds after the old one's (0: the same
 * second, to the nanosecond).
 */
static void cache_then_replace(struct fixture *f, time_t later)
{
	char path[PATH_MAX];
	struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT } };
	struct stat st;
	bkr_store *local;

	open_cache(f, 0);
	read_pack(f, 0, PACK_LEN);
	assert_int_equal(f->c->ranges, 2);
	snprintf(path, sizeof(path), "%s/%s", f->repo, PACK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(bkr_random_bytes(f->pack, PACK_LEN), 0);
	assert_int_equal(bkr_store_local_open(&local, f->repo, 0), 0);
	assert_int_equal(bkr_store_delete(local, PACK), 0);
	assert_int_equal(bkr_store_put(local, PACK, f->pack, PACK_LEN), 0);
	bkr_store_free(local);
	ts[1] = st.st_mtim;
	ts[1].tv_sec += later;
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* A new process reads the new bytes: each block dropped when checked and
 * fetched again, then kept (the next process reads them from disk). */
static void assert_refetched(struct fixture *f)
{
	bkr_store_cache_stats cst;

	open_cache(f, 0);
	read_pack(f, 0, PACK_LEN);
	assert_int_equal(f->c->ranges, 6);
	bkr_store_cache_stats_get(f->s, &cst);
	assert_int_equal(cst.refetched, 6);
	open_cache(f, 0);
	read_pack(f, 0, PACK_LEN);
	assert_int_equal(f->c->ranges, 0);
}

static void test_replaced_pack_refetched(void **state)
{
	struct fixture *f = *state;

	cache_then_replace(f, 100);
	assert_refetched(f);
}

/* a pack replaced by another of the same size within the same second (its
 * last-modified time the same): the version tag (S3's ETag) tells, and a new
 * process fetches the blocks again instead of serving the old bytes */
static void test_replaced_pack_same_second(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	bkr_store_cache_stats cst;

	snprintf(fake_tag, sizeof(fake_tag), "\"etag-of-the-first\"");
	cache_then_replace(f, 0);
	snprintf(fake_tag, sizeof(fake_tag), "\"etag-of-the-second\"");
	assert_refetched(f);
	/* a block file of an older bkr (magic bkrcach2, no tag) is fetched again once */
	{
		char blk[PATH_MAX];
		FILE *fp;
		cache_path(f, "b/" PACK "/0000000000000000", blk);
		assert_int_equal(stat(blk, &st), 0);
		assert_non_null(fp = fopen(blk, "r+b"));
		fseek(fp, st.st_size - 96 + 7, SEEK_SET);
		fputc('2', fp);
		fclose(fp);
	}
	open_cache(f, 0);
	read_pack(f, 0, PACK_LEN);
	assert_int_equal(f->c->ranges, 1);
	bkr_store_cache_stats_get(f->s, &cst);
	assert_int_equal(cst.refetched, 1);
	fake_tag[0] = '\0';
}

static void damage(const char *path, int how)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	if (how == 0) { /* truncated: the trailer cut off */
		assert_int_equal(truncate(path, st.st_size - 20), 0);
	} else if (how == 1) { /* one byte flipped in the data */
		FILE *fp = fopen(path, "r+b");
		int c;
		assert_non_null(fp);
		fseek(fp, 1000, SEEK_SET);
		c = fgetc(fp);
		fseek(fp, 1000, SEEK_SET);
		fputc(c ^ 0x40, fp);
		fclose(fp);
	} else { /* torn: an empty file where the rename landed first */
		assert_int_equal(truncate(path, 0), 0);
	}
}

static void test_damaged_files_refetched(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX], tmp[PATH_MAX];
	bkr_store_cache_stats st;
	uint8_t *d;
	size_t n;

	for (int how = 0; how < 3; how++) {
		open_cache(f, 0);
		read_pack(f, 0, PACK_LEN);
		assert_int_equal(bkr_store_get(f->s, TREE, MIB, &d, &n), 0);
		free(d);
		cache_path(f, "b/" PACK "/0000000000000002", path);
		damage(path, how);
		cache_path(f, "w/" TREE, path);
		damage(path, how);
		/* a write a crash cut short */
		cache_path(f, "b/" PACK "/.tmp-0123456789abcdef", tmp);
		assert_int_equal(tu_write(NULL, tmp, "x", 1), 0);

		open_cache(f, 0);
		assert_int_not_equal(access(tmp, F_OK), 0);
		read_pack(f, 0, PACK_LEN);
		assert_int_equal(f->c->ranges, 1); /* block 2 again, alone */
		assert_int_equal(bkr_store_get(f->s, TREE, MIB, &d, &n), 0);
		assert_int_equal(n, 100000);
		assert_memory_equal(d, f->pack, n);
		free(d);
		assert_int_equal(f->c->gets, 1);
		bkr_store_cache_stats_get(f->s, &st);
		assert_int_equal(st.refetched, 2);
		/* and now it is good again */
		open_cache(f, 0);
		read_pack(f, 0, PACK_LEN);
		assert_int_equal(f->c->ranges, 0);
	}
}

static void test_removed_file_refetched(void **state)
{
	struct fixture *f = *state;
	char path[PATH_MAX];

	open_cache(f, 0);
	read_pack(f, 0, 10);
	/* removed while the store runs (someone cleaned the cache) */
	cache_path(f, "b/" PACK "/0000000000000000", path);
	assert_int_equal(unlink(path), 0);
	read_pack(f, 0, 10);
	assert_int_equal(f->c->ranges, 2);
	/* and shrunk: a file read in place that became short */
	assert_int_equal(truncate(path, 100), 0);
	read_pack(f, 500, 10);
	assert_int_equal(f->c->ranges, 3);
}

/* A FIFO planted in the cache where a block and a whole object were (hostile: a FIFO opened for
 * reading with no writer blocks): refused as no regular file, never opened blocking, fetched again
 * in its place, both while the store runs (a file checked before) and in the next process (a file
 * found at its start, checked at its first read). */
static void test_fifo_in_cache_refetched(void **state)
{
	struct fixture *f = *state;
	char block[PATH_MAX], whole[PATH_MAX];
	struct stat st;
	uint8_t *d;
	size_t n;

	open_cache(f, 0);
	read_pack(f, 0, 10);
	assert_int_equal(bkr_store_get(f->s, TREE, MIB, &d, &n), 0);
	free(d);
	cache_path(f, "b/" PACK "/0000000000000000", block);
	cache_path(f, "w/" TREE, whole);
	for (int round = 0; round < 2; round++) {
		if (round == 1)
			open_cache(f, 0); /* the next process: it found the files, checks them at their first read */
		assert_int_equal(unlink(block), 0);
		assert_int_equal(mkfifo(block, 0600), 0);
		assert_int_equal(unlink(whole), 0);
		assert_int_equal(mkfifo(whole, 0600), 0);
		f->c->ranges = f->c->gets = 0;
		read_pack(f, 0, 10);
		assert_int_equal(f->c->ranges, 1);
		assert_int_equal(bkr_store_get(f->s, TREE, MIB, &d, &n), 0);
		assert_int_equal(n, 100000);
		assert_memory_equal(d, f->pack, n);
		free(d);
		assert_int_equal(f->c->gets, 1);
		assert_int_equal(lstat(block, &st), 0);
		assert_true(S_ISREG(st.st_mode));
		assert_int_equal(lstat(whole, &st), 0);
		assert_true(S_ISREG(st.st_mode));
	}
}

static uint64_t du(const char *dir)
{
	char cmd[PATH_MAX + 64], out[64] = "";
	FILE *p;
	snprintf(cmd, sizeof(cmd), "find '%s' -type f -path '*/b/*' -printf '%%s\\n' | awk '{s+=$1} END {print s+0}'", dir);
	assert_non_null(p = popen(cmd, "r"));
	assert_non_null(fgets(out, sizeof(out), p));
	pclose(p);
	return strtoull(out, NULL, 10);
}

static void test_size_bound(void **state)
{
	struct fixture *f = *state;
	bkr_store_cache_stats st;
	uint64_t max = 3 * MIB + 1000;

	open_cache(f, max);
	read_pack(f, 0, PACK_LEN);
	bkr_store_cache_stats_get(f->s, &st);
	assert_true(st.bytes <= max);
	assert_true(du(bkr_store_cache_root(f->s)) <= max);
	assert_true(st.evicted >= 3);
	/* the newest blocks stayed, the oldest went */
	unsigned before = f->c->ranges;
	read_pack(f, 5 * MIB, 12345);
	assert_int_equal(f->c->ranges, before);
	read_pack(f, 0, 10);
	assert_int_equal(f->c->ranges, before + 1);
	/* a new process with a smaller bound trims what it finds */
	open_cache(f, MIB + 100);
	bkr_store_cache_stats_get(f->s, &st);
	assert_true(st.bytes <= MIB + 100);
	assert_true(du(bkr_store_cache_root(f->s)) <= MIB + 100);
}

struct reader {
	struct fixture *f;
	unsigned seed;
	int bad;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint8_t *buf = malloc(300000);
	for (int k = 0; k < 100 && buf; k++) {
		uint64_t off = (uint64_t)rand_r(&r->seed) % PACK_LEN;
		size_t len = 1 + (size_t)rand_r(&r->seed) % 150000;
		if (len > PACK_LEN - off)
			len = PACK_LEN - off;
		if (k % 4 == 0) {
			off %= 90000;
			if (bkr_store_get_range(r->f->s, TREE, off, 10000, buf, 0) < 0 ||
			    memcmp(buf, r->f->pack + off, 10000))
				r->bad++;
			continue;
		}
		if (bkr_store_get_range(r->f->s, PACK, off, len, buf, 0) < 0 || memcmp(buf, r->f->pack + off, len))
			r->bad++;
	}
	free(buf);
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	struct fixture *f = *state;
	struct reader r[8];
	pthread_t t[8];

	for (int pass = 0; pass < 2; pass++) {
		/* pass 1: a bound smaller than the pack, so eviction races the readers */
		open_cache(f, pass ? 2 * MIB : 0);
		for (int i = 0; i < 8; i++) {
			r[i] = (struct reader){ f, (unsigned)(i + 1) * 7919u + (unsigned)pass, 0 };
			assert_int_equal(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
		}
		for (int i = 0; i < 8; i++) {
			pthread_join(t[i], NULL);
			assert_int_equal(r[i].bad, 0);
		}
		if (pass == 0) { /* every block and the tree fetched once */
			assert_true(f->c->ranges <= 6);
			assert_int_equal(f->c->gets, 1);
			assert_int_equal(f->c->stats, 1);
		}
	}
}

struct first_reader {
	struct fixture *f;
	pthread_barrier_t *go;
	uint64_t block;
	int bad;
};

static void *first_reader_main(void *arg)
{
	struct first_reader *r = arg;
	uint8_t buf[100];
	pthread_barrier_wait(r->go);
	if (bkr_store_get_range(r->f->s, PACK, r->block * MIB, sizeof(buf), buf, 0) < 0 ||
	    memcmp(buf, r->f->pack + r->block * MIB, sizeof(buf)))
		r->bad++;
	return NULL;
}

/* readers of different blocks of a pack nobody has read yet: its size is asked once */
static void test_size_asked_once(void **state)
{
	struct fixture *f = *state;
	struct first_reader r[5];
	pthread_t t[5];
	pthread_barrier_t go;
	uint8_t b;

	open_cache(f, 0);
	f->c->stat_delay_us = 20000; /* every reader is waiting by the time the first stat returns */
	assert_int_equal(pthread_barrier_init(&go, NULL, 5), 0);
	for (int i = 0; i < 5; i++) {
		r[i] = (struct first_reader){ f, &go, (uint64_t)i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, first_reader_main, &r[i]), 0);
	}
	for (int i = 0; i < 5; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].bad, 0);
	}
	pthread_barrier_destroy(&go);
	assert_int_equal(f->c->stats, 1);
	/* a pack that is not there: every waiting reader gets the error, nothing is kept */
	f->c->stat_delay_us = 0;
	assert_int_equal(bkr_store_get_range(f->s, "data/ee/00000000000000000000000000000000.pack", 0, 1, &b, 0),
			 BKR_ENOTFOUND);
	assert_int_equal(bkr_store_get_range(f->s, "data/ee/00000000000000000000000000000000.pack", 0, 1, &b, 0),
			 BKR_ENOTFOUND);
	assert_int_equal(f->c->stats, 3);
}

static int collect(void *ctx, const char *name)
{
	(*(int *)ctx)++;
	(void)name;
	return 0;
}

static void test_pass_through(void **state)
{
	struct fixture *f = *state;
	bkr_store *other;
	uint64_t size;
	uint8_t *d;
	size_t n;
	int count = 0;

	open_cache(f, 0);
	assert_int_equal(bkr_store_list(f->s, "", collect, &count), 0);
	assert_int_equal(count, 4);
	assert_int_equal(bkr_store_stat(f->s, PACK, &size), 0);
	assert_int_equal(size, PACK_LEN);
	assert_int_equal(bkr_store_put(f->s, "backups/b1.json", "{\"a\":1}", 7), 0);
	assert_int_equal(bkr_store_put(f->s, "backups/b1.json", "{}", 2), BKR_EEXISTS);
	assert_int_equal(bkr_store_get(f->s, "backups/b1.json", 100, &d, &n), 0);
	free(d);
	/* removed through the cache: forgotten by it too */
	assert_int_equal(bkr_store_delete(f->s, "backups/b1.json"), 0);
	assert_int_equal(bkr_store_get(f->s, "backups/b1.json", 100, &d, &n), BKR_ENOTFOUND);
	/* removed behind its back: the next read that reaches the store forgets it */
	read_pack(f, 0, 10);
	assert_int_equal(unlink(f->repo), -1); /* (a directory) */
	{
		char p[PATH_MAX];
		uint8_t b[10];
		snprintf(p, sizeof(p), "%s/%s", f->repo, PACK);
		assert_int_equal(unlink(p), 0);
		open_cache(f, 0); /* size is asked again: the pack is gone */
		assert_int_equal(bkr_store_get_range(f->s, PACK, 0, 10, b, 0), BKR_ENOTFOUND);
		cache_path(f, "b/" PACK "/0000000000000000", p);
		assert_int_not_equal(access(p, F_OK), 0);
	}
	/* one process per cache directory */
	assert_int_equal(bkr_store_local_open(&other, f->repo, 0), 0);
	assert_int_equal(bkr_store_cache_open(&other, other, f->cache, 0), BKR_ELOCKED);
	assert_null(other);
	assert_non_null(strstr(bkr_error_message(), "in use"));
	/* another repository has its own directory */
	assert_int_equal(bkr_store_local_open(&other, f->cache, 0), 0);
	assert_int_equal(bkr_store_cache_open(&other, other, f->cache, 0), 0);
	assert_string_not_equal(bkr_store_cache_root(other), bkr_store_cache_root(f->s));
	bkr_store_free(other);
}

/* what the process writes is kept as it is sent: read back, stat, a new process, with no request */
static void test_written_kept(void **state)
{
	struct fixture *f = *state;
	bkr_store_upload *u;
	uint8_t *d, buf[1000];
	uint64_t size;
	size_t n;

	open_cache(f, 0);
	assert_int_equal(bkr_store_put(f->s, "index/new.idx", "new index", 9), 0);
	assert_int_equal(bkr_store_put(f->s, "backups/b2.json", "{\"b\":2}", 7), 0);
	assert_int_equal(bkr_store_upload_new(f->s, "tree", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, f->pack, 60000), 0);
	assert_int_equal(bkr_store_upload_write(u, f->pack + 60000, 40000), 0);
	assert_int_equal(bkr_store_upload_publish(u, "tree/ee/new.pack"), 0);
	bkr_store_upload_free(u);
	assert_int_equal(bkr_store_upload_new(f->s, "data", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, f->pack, 1000), 0);
	assert_int_equal(bkr_store_upload_publish(u, "data/ee/new.pack"), 0);
	bkr_store_upload_free(u);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(bkr_store_get(f->s, "index/new.idx", 100, &d, &n), 0);
		assert_int_equal(n, 9);
		assert_memory_equal(d, "new index", 9);
		free(d);
		assert_int_equal(bkr_store_stat(f->s, "index/new.idx", &size), 0);
		assert_int_equal(size, 9);
		assert_int_equal(bkr_store_get_range(f->s, "tree/ee/new.pack", 59000, 1000, buf, 0), 0);
		assert_memory_equal(buf, f->pack + 59000, 1000);
		assert_int_equal(bkr_store_stat(f->s, "tree/ee/new.pack", &size), 0);
		assert_int_equal(size, 100000);
		assert_int_equal(requests(f->c), 0);
		open_cache(f, 0); /* a new process: the files on disk, checked, no request */
	}
	/* a data pack is not kept; a whole object the store lacks is its BKR_ENOTFOUND */
	assert_int_equal(bkr_store_get_range(f->s, "data/ee/new.pack", 0, 10, buf, 0), 0);
	assert_int_not_equal(requests(f->c), 0);
	assert_int_equal(bkr_store_stat(f->s, "index/none.idx", &size), BKR_ENOTFOUND);
	/* a damaged kept file is fetched again when stat checks it */
	{
		char p[PATH_MAX];
		FILE *fp;
		cache_path(f, "w/index/new.idx", p);
		assert_non_null(fp = fopen(p, "r+b"));
		fputc('X', fp);
		fclose(fp);
		open_cache(f, 0);
		assert_int_equal(bkr_store_stat(f->s, "index/new.idx", &size), 0);
		assert_int_equal(size, 9);
		assert_int_equal(f->c->gets, 1);
		assert_int_equal(bkr_store_get(f->s, "index/new.idx", 100, &d, &n), 0);
		assert_memory_equal(d, "new index", 9);
		free(d);
		assert_int_equal(f->c->gets, 1);
	}
}

static void test_default_dir(void **state)
{
	char out[PATH_MAX];
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *sx = xdg ? strdup(xdg) : NULL, *sh = home ? strdup(home) : NULL;
	(void)state;

	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	assert_int_equal(bkr_store_cache_default_dir(out, sizeof(out)), 0);
	assert_string_equal(out, "/x/cache/bkrfs");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/u", 1);
	assert_int_equal(bkr_store_cache_default_dir(out, sizeof(out)), 0);
	assert_string_equal(out, "/home/u/.cache/bkrfs");
	/* a relative XDG_CACHE_HOME is ignored (the XDG rule): HOME's */
	setenv("XDG_CACHE_HOME", "rel/cache", 1);
	assert_int_equal(bkr_store_cache_default_dir(out, sizeof(out)), 0);
	assert_string_equal(out, "/home/u/.cache/bkrfs");
	/* and a relative HOME too, as copy's cache does (one rule): no cache directory, said */
	setenv("HOME", "home/u", 1);
	assert_int_equal(bkr_store_cache_default_dir(out, sizeof(out)), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "XDG_CACHE_HOME"));
	assert_non_null(strstr(bkr_error_message(), "HOME is an absolute path"));
	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	assert_int_equal(bkr_store_cache_default_dir(out, sizeof(out)), BKR_ENOTFOUND);
	if (sx)
		setenv("XDG_CACHE_HOME", sx, 1);
	if (sh)
		setenv("HOME", sh, 1);
	free(sx);
	free(sh);
}

/* flip byte @p at of every block file of the data packs under @p root */
static void flip_blocks(const char *root)
{
	char cmd[PATH_MAX + 200];
	snprintf(cmd, sizeof(cmd),
		 "find '%s/b/data' -type f | while read -r p; do printf '\\377' | dd of=\"$p\" bs=1 seek=40 "
		 "conv=notrunc status=none; done",
		 root);
	assert_int_equal(tu_sh("%s", cmd), 0);
}

/* A cache directory whose files someone else could have written is not used (its trailers
 * are no seal: any object's good-looking copy could be put under any name). */
static void test_foreign_cache_dir(void **state)
{
	struct fixture *f = *state;
	char root[PATH_MAX];
	bkr_store *s = NULL;
	counting *c;

	open_cache(f, 0);
	read_pack(f, 0, 1000);
	snprintf(root, sizeof(root), "%s", bkr_store_cache_root(f->s));
	bkr_store_free(f->s);
	f->s = NULL;
	for (int k = 0; k < 3; k++) {
		if (k == 0)
			assert_int_equal(chmod(root, 0777), 0);
		else if (k == 1)
			assert_int_equal(chmod(root, 0770), 0);
		else if (geteuid() != 0 || chown(root, 12345, 12345) < 0)
			break; /* another owner: only root can make one */
		c = counting_open(f->repo);
		assert_int_equal(bkr_store_cache_open(&s, &c->base, f->cache, 0), BKR_EINVAL);
		assert_null(s);
		assert_non_null(strstr(bkr_error_message(), root));
		assert_non_null(strstr(bkr_error_message(), k < 2 ? "writable by other users" : "owned by uid 12345"));
		assert_int_equal(chmod(root, 0700), 0);
		assert_int_equal(chown(root, geteuid(), getegid()), 0);
	}
	/* ours again: used, what it kept read without a request */
	open_cache(f, 0);
	read_pack(f, 0, 1000);
	assert_int_equal(f->c->ranges, 0);
}

/* "<cache>/<name>", a repository's cache directory as an earlier process left it: a
 * location (none when NULL), a kept file, and its lock file last touched @p days ago. */
static void old_cache_dir(struct fixture *f, const char *name, const char *location, int days)
{
	char dir[PATH_MAX], lock[PATH_MAX + 8];
	struct timespec t[2] = { { .tv_sec = time(NULL) - (time_t)days * 86400 } };
	snprintf(dir, sizeof(dir), "%s/%s", f->cache, name);
	assert_int_equal(tu_writes(dir, "w/index/0123.idx", "kept bytes"), 0);
	if (location)
		assert_int_equal(tu_writes(dir, "location", location), 0);
	snprintf(lock, sizeof(lock), "%s/lock", dir);
	assert_int_equal(tu_writes(dir, "lock", ""), 0);
	t[1] = t[0];
	assert_int_equal(utimensat(AT_FDCWD, lock, t, 0), 0);
}

static bool cache_dir_there(struct fixture *f, const char *name)
{
	char dir[PATH_MAX];
	struct stat st;
	snprintf(dir, sizeof(dir), "%s/%s", f->cache, name);
	return lstat(dir, &st) == 0;
}

/* The cache directories of other repositories were never removed: one of a repository not
 * read for months, or of a key no longer made (before the endpoint was part of it), stayed
 * on disk for good, up to --cache-max each.  An open now removes those no process holds. */
static void test_unused_dirs_removed(void **state)
{
	struct fixture *f = *state;
	const int old = BKR_STORE_CACHE_UNUSED_DAYS + 1;
	char lock[PATH_MAX], root[PATH_MAX];
	time_t t0 = time(NULL);
	struct stat st;
	int held;

	tu_mkdirs(f->cache);
	old_cache_dir(f, "0123456789abcdef", "s3://b/unused at http://127.0.0.1:9000", old);
	old_cache_dir(f, "1111111111111111", "s3://b/recent at http://127.0.0.1:9000", BKR_STORE_CACHE_UNUSED_DAYS - 1);
	old_cache_dir(f, "2222222222222222", "s3://b/mounted at http://127.0.0.1:9000", old);
	old_cache_dir(f, "3333333333333333", "s3://b/oldkey", 0);      /* the key before ba10ca7 */
	old_cache_dir(f, "not-a-cache-dir0", "s3://b/x at http://h", old); /* not a key's name */
	old_cache_dir(f, "4444444444444444", NULL, old);                  /* no location: still a cache dir */
	tu_mkdirs(f->cache);
	assert_int_equal(tu_writes(f->cache, ".removing-5555555555555555-1/w/x", "a removal cut short"), 0);
	assert_int_equal(tu_writes(f->cache, "6666666666666666/w/x", "no lock file: not ours"), 0);
	/* a mount holds this one */
	snprintf(lock, sizeof(lock), "%s/2222222222222222/lock", f->cache);
	assert_true((held = open(lock, O_RDWR)) >= 0);
	assert_int_equal(flock(held, LOCK_EX | LOCK_NB), 0);

	open_cache(f, 0);
	read_pack(f, 0, 1000);
	assert_false(cache_dir_there(f, "0123456789abcdef"));
	assert_true(cache_dir_there(f, "1111111111111111"));
	assert_true(cache_dir_there(f, "2222222222222222"));
	assert_false(cache_dir_there(f, "3333333333333333"));
	assert_true(cache_dir_there(f, "not-a-cache-dir0"));
	assert_false(cache_dir_there(f, "4444444444444444"));
	assert_false(cache_dir_there(f, ".removing-5555555555555555-1"));
	assert_true(cache_dir_there(f, "6666666666666666"));
	close(held);

	/* this repository's own: used now (its lock file touched at open and at close), and
	 * what it kept read again without a request */
	snprintf(root, sizeof(root), "%s/lock", bkr_store_cache_root(f->s));
	bkr_store_free(f->s);
	f->s = NULL;
	assert_int_equal(stat(root, &st), 0);
	assert_true(st.st_mtime >= t0);
	open_cache(f, 0);
	read_pack(f, 0, 1000);
	assert_int_equal(f->c->ranges, 0);
}

static void test_repo_through_cache(void **state)
{
	struct fixture *f = *state;
	char repo[PATH_MAX];
	bkr_repo *r;
	bkr_writer *w;
	bkr_store *s;
	bkr_id id;
	uint8_t *blob, *d;
	size_t n;

	snprintf(repo, sizeof(repo), "%s/r2", f->dir);
	assert_int_equal(bkr_repo_init(repo, NULL), 0);
	assert_int_equal(bkr_repo_open(&r, repo, 0), 0);
	assert_int_equal(bkr_writer_new(&w, r), 0);
	assert_non_null(blob = malloc(200000));
	for (size_t k = 0; k < 200000; k++)
		blob[k] = (uint8_t)(k * 7 + k / 1000);
	assert_int_equal(bkr_writer_put_hash(w, BKR_BLOB_DATA, blob, 200000, &id, NULL), 0);
	assert_int_equal(bkr_writer_commit(w), 0);
	bkr_writer_free(w);
	bkr_repo_free(r);

	assert_int_equal(bkr_store_local_open(&s, repo, 0), 0);
	assert_int_equal(bkr_store_cache_open(&s, s, f->cache, 0), 0);
	assert_int_equal(bkr_repo_open_store(&r, s, BKR_REPO_RDONLY), 0);
	assert_string_equal(bkr_repo_path(r), repo);
	assert_ptr_equal(bkr_repo_store(r), s);
	assert_int_equal(bkr_repo_read_blob(r, &id, BKR_BLOB_DATA, &d, &n), 0);
	assert_int_equal(n, 200000);
	assert_memory_equal(d, blob, n);
	free(d);
	/* damaged in the cache after it was checked: an error, never wrong bytes */
	flip_blocks(bkr_store_cache_root(s));
	assert_int_equal(bkr_repo_read_blob(r, &id, BKR_BLOB_DATA, &d, &n), BKR_ECORRUPT);
	bkr_repo_free(r);
	/* the next process finds the damage and fetches the block again */
	assert_int_equal(bkr_store_local_open(&s, repo, 0), 0);
	assert_int_equal(bkr_store_cache_open(&s, s, f->cache, 0), 0);
	assert_int_equal(bkr_repo_open_store(&r, s, BKR_REPO_RDONLY), 0);
	assert_int_equal(bkr_repo_read_blob(r, &id, BKR_BLOB_DATA, &d, &n), 0);
	assert_memory_equal(d, blob, n);
	free(d);
	bkr_repo_free(r);
	/* not a repository: the usual message, naming the store */
	assert_int_equal(bkr_store_local_open(&s, f->cache, 0), 0);
	assert_int_equal(bkr_repo_open_store(&r, s, 0), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "no config.json"));
	free(blob);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_whole_object_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tree_pack_read_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_files_refetched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_pack_refetched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_pack_same_second, setup, teardown),
		cmocka_unit_test_setup_teardown(test_removed_file_refetched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_in_cache_refetched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_readers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_size_asked_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pass_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_written_kept, setup, teardown),
		cmocka_unit_test(test_default_dir),
		cmocka_unit_test_setup_teardown(test_foreign_cache_dir, setup, teardown),
		cmocka_unit_test_setup_teardown(test_repo_through_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unused_dirs_removed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
