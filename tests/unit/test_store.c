/** @file
 * Unit tests of the storage layer (engine/store.c) and its local-directory
 * implementation (engine/store_local.c): put-if-absent never replaces and
 * leaves no temporary, uploads, ranged reads and their bounds, reads through
 * the descriptor cache from many threads and its share of the limit of open
 * files, listing, delete, moves into trash
 * that never replace, locks, object-name checks, the BKR_FAULT points
 * reached through the store, and two writers publishing into one new pack
 * folder while one of them fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/store.h"

#include "testutil.h"

struct fixture {
	char dir[256];
	bkr_store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	if (tu_mkdtemp_in(f->dir, sizeof(f->dir), "test-store") < 0)
		return -1;
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	if (bkr_store_local_open(&f->s, f->dir, 0) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	bkr_store_free(f->s);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* ---- listing helper ------------------------------------------------------ */

struct names {
	char *v[256];
	size_t n;
	size_t stop_after; /* 0 = never */
};

static int collect(void *ctx, const char *name)
{
	struct names *l = ctx;
	if (l->n < 256)
		l->v[l->n++] = strdup(name);
	if (l->stop_after && l->n == l->stop_after)
		return BKR_ECORRUPT;
	return 0;
}

static bool has(const struct names *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], name))
			return true;
	return false;
}

static size_t count_prefix(const struct names *l, const char *prefix)
{
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++) {
		const char *base = strrchr(l->v[i], '/');
		base = base ? base + 1 : l->v[i];
		if (!strncmp(base, prefix, strlen(prefix)))
			k++;
	}
	return k;
}

static void names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

static size_t temporaries(bkr_store *s)
{
	struct names l = { 0 };
	size_t n;
	assert_int_equal(bkr_store_list(s, "", collect, &l), 0);
	n = count_prefix(&l, ".tmp-");
	names_free(&l);
	return n;
}

static void expect_content(bkr_store *s, const char *name, const char *want)
{
	uint8_t *got;
	size_t len;
	assert_int_equal(bkr_store_get(s, name, 1 << 20, &got, &len), 0);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(got, want, len);
	assert_int_equal(got[len], '\0');
	free(got);
}

/* ---- tests --------------------------------------------------------------- */

static void test_put_never_replaces(void **state)
{
	struct fixture *f = *state;
	uint64_t size;
	assert_int_equal(bkr_store_put(f->s, "backups/a.json", "first", 5), 0);
	expect_content(f->s, "backups/a.json", "first");
	assert_int_equal(bkr_store_put(f->s, "backups/a.json", "second!", 7), BKR_EEXISTS);
	assert_non_null(strstr(bkr_error_message(), "a.json"));
	expect_content(f->s, "backups/a.json", "first");
	assert_int_equal(bkr_store_stat(f->s, "backups/a.json", &size), 0);
	assert_int_equal(size, 5);
	assert_int_equal(temporaries(f->s), 0);
	/* deep names create their folders */
	assert_int_equal(bkr_store_put(f->s, "data/ab/cd.pack", "x", 1), 0);
	expect_content(f->s, "data/ab/cd.pack", "x");
}

static void test_get_missing_and_limits(void **state)
{
	struct fixture *f = *state;
	uint8_t *buf;
	size_t len;
	uint64_t size;
	assert_int_equal(bkr_store_get(f->s, "nope.json", 100, &buf, &len), BKR_ENOTFOUND);
	assert_null(buf);
	assert_non_null(strstr(bkr_error_message(), "nope.json"));
	assert_int_equal(bkr_store_stat(f->s, "nope.json", &size), BKR_ENOTFOUND);
	assert_int_equal(bkr_store_put(f->s, "big", "0123456789", 10), 0);
	assert_int_equal(bkr_store_get(f->s, "big", 9, &buf, &len), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "too large"));
	assert_int_equal(bkr_store_get(f->s, "big", 10, &buf, &len), 0);
	free(buf);
	assert_int_equal(bkr_store_put(f->s, "empty", "", 0), 0);
	expect_content(f->s, "empty", "");
}

static void test_bad_names(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = { "", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", ".", ".." };
	uint8_t *buf;
	size_t len;
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(bkr_store_put(f->s, bad[i], "x", 1), BKR_EINVAL);
		assert_int_equal(bkr_store_get(f->s, bad[i], 10, &buf, &len), BKR_EINVAL);
		assert_int_equal(bkr_store_delete(f->s, bad[i]), BKR_EINVAL);
	}
	/* folders may be "" or end in '/', but not escape */
	struct names l = { 0 };
	assert_int_equal(bkr_store_list(f->s, "../", collect, &l), BKR_EINVAL);
	assert_int_equal(bkr_store_list(f->s, "/", collect, &l), BKR_EINVAL);
	assert_int_equal(l.n, 0);
}

static void test_get_range_bounds(void **state)
{
	struct fixture *f = *state;
	char buf[16];
	assert_int_equal(bkr_store_put(f->s, "p", "0123456789", 10), 0);
	assert_int_equal(bkr_store_get_range(f->s, "p", 2, 5, buf, 0), 0);
	assert_memory_equal(buf, "23456", 5);
	assert_int_equal(bkr_store_get_range(f->s, "p", 0, 10, buf, BKR_STORE_READ_AHEAD), 0);
	assert_memory_equal(buf, "0123456789", 10);
	assert_int_equal(bkr_store_get_range(f->s, "p", 10, 0, buf, 0), 0);
	/* past the end: truncated, never a short read */
	assert_int_equal(bkr_store_get_range(f->s, "p", 8, 3, buf, 0), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "truncated"));
	assert_int_equal(bkr_store_get_range(f->s, "p", 100, 1, buf, 0), BKR_ECORRUPT);
	assert_true(bkr_store_get_range(f->s, "p", UINT64_MAX / 2, 1, buf, 0) < 0);
	/* the failure did not spoil the next read */
	assert_int_equal(bkr_store_get_range(f->s, "p", 9, 1, buf, 0), 0);
	assert_int_equal(buf[0], '9');
	assert_int_equal(bkr_store_get_range(f->s, "missing", 0, 1, buf, 0), BKR_ENOTFOUND);
	/* advice: a range, to the end, past the end (harmless); a missing object or bad name said */
	assert_int_equal(bkr_store_advise(f->s, "p", 2, 5), 0);
	assert_int_equal(bkr_store_advise(f->s, "p", 0, 0), 0);
	assert_int_equal(bkr_store_advise(f->s, "p", 100, 1), 0);
	assert_int_equal(bkr_store_advise(f->s, "missing", 0, 0), BKR_ENOTFOUND);
	assert_int_equal(bkr_store_advise(f->s, "../p", 0, 0), BKR_EINVAL);
	assert_int_equal(bkr_store_get_range(f->s, "p", 2, 5, buf, 0), 0);
	assert_memory_equal(buf, "23456", 5);
}

/* A listed object that answers "no such object" (BKR_STORE_LISTED, bkr_store_stat_listed): asked again
 * twice, then an I/O error naming it, never "not found" (which verify took for damage); its folder listed
 * again does not name it: "listed, but gone" (deleted since it was listed).  One still listed but not
 * served (an S3 store answering 404) is tests/integration/test_s3_listed.sh. */
static void test_listed_missing(void **state)
{
	struct fixture *f = *state;
	char buf[4];
	uint64_t size = 7;
	assert_int_equal(bkr_store_put(f->s, "data/ab/p.pack", "0123456789", 10), 0);
	assert_int_equal(bkr_store_get_range(f->s, "data/ab/p.pack", 2, 3, buf, BKR_STORE_LISTED), 0);
	assert_memory_equal(buf, "234", 3);
	assert_int_equal(bkr_store_stat_listed(f->s, "data/ab/p.pack", &size), 0);
	assert_int_equal(size, 10);
	assert_int_equal(bkr_store_get_range(f->s, "data/ab/q.pack", 0, 1, buf, BKR_STORE_LISTED), BKR_EIO);
	assert_non_null(strstr(bkr_error_message(), "data/ab/q.pack: listed, but gone: deleted since it was listed"));
	assert_non_null(strstr(bkr_error_message(), "not damage"));
	assert_int_equal(bkr_store_stat_listed(f->s, "data/ab/q.pack", &size), BKR_EIO);
	assert_non_null(strstr(bkr_error_message(), "data/ab/q.pack: listed, but gone"));
	/* a folder that is gone too (pruned empty) */
	assert_int_equal(bkr_store_stat_listed(f->s, "data/cd/r.pack", &size), BKR_EIO);
	assert_non_null(strstr(bkr_error_message(), "data/cd/r.pack: listed, but gone"));
	/* other errors are as they were */
	assert_int_equal(bkr_store_get_range(f->s, "data/ab/p.pack", 8, 3, buf, BKR_STORE_LISTED), BKR_ECORRUPT);
	assert_int_equal(bkr_store_get_range(f->s, "../p", 0, 1, buf, BKR_STORE_LISTED), BKR_EINVAL);
}

static void test_upload(void **state)
{
	struct fixture *f = *state;
	bkr_store_upload *u;
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, "hello ", 6), 0);
	assert_int_equal(bkr_store_upload_write(u, "world", 5), 0);
	assert_int_equal(temporaries(f->s), 1); /* visible to cleanup while unfinished */
	assert_int_equal(bkr_store_upload_publish(u, "data/12/x.pack"), 0);
	assert_int_equal(bkr_store_upload_publish(u, "data/12/y.pack"), BKR_EINVAL);
	bkr_store_upload_free(u);
	expect_content(f->s, "data/12/x.pack", "hello world");
	assert_int_equal(temporaries(f->s), 0);

	/* publishing over an existing object fails and leaves no temporary */
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, "other", 5), 0);
	assert_int_equal(bkr_store_upload_publish(u, "data/12/x.pack"), BKR_EEXISTS);
	bkr_store_upload_free(u);
	expect_content(f->s, "data/12/x.pack", "hello world");
	assert_int_equal(temporaries(f->s), 0);

	/* an abandoned upload leaves nothing */
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, "junk", 4), 0);
	bkr_store_upload_free(u);
	assert_int_equal(temporaries(f->s), 0);
	bkr_store_upload_free(NULL);

	/* the store's directory vanishing under a finished upload is an I/O
	 * error (exit 7), not "not found" (exit 3): publish makes the object's
	 * directory again, but the temporary just written is gone */
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, "lost", 4), 0);
	tu_rmrf(f->dir);
	assert_int_equal(bkr_store_upload_publish(u, "data/12/z.pack"), BKR_EIO);
	assert_non_null(strstr(bkr_error_message(), "No such file or directory"));
	bkr_store_upload_free(u);
}

/* The byte at @p i of test_upload_direct's uploads. */
static uint8_t direct_byte(size_t i)
{
	return (uint8_t)(i * 2654435761u >> 13);
}

/* Write the pattern's bytes @p from to @p to into @p u in pieces of odd
 * sizes; the first failure's code (0: none). */
static int write_pattern(bkr_store_upload *u, size_t from, size_t to)
{
	static const size_t pieces[] = { 1, 16, 4095, 333333, 1 << 20, 7 };
	static _Thread_local uint8_t piece[1 << 20]; /* not malloc'd: test_upload_staging_memory counts resident memory */
	size_t off = from;
	int err = 0;
	for (size_t k = 0; off < to && err == 0; k++) {
		size_t n = pieces[k % (sizeof(pieces) / sizeof(*pieces))];
		if (n > to - off)
			n = to - off;
		for (size_t i = 0; i < n; i++)
			piece[i] = direct_byte(off + i);
		err = bkr_store_upload_write(u, piece, n);
		off += n;
	}
	return err;
}

/* Upload @p len bytes in pieces of odd sizes and publish them as @p name. */
static void upload_pattern(bkr_store *s, const char *name, size_t len)
{
	bkr_store_upload *u;
	assert_int_equal(bkr_store_upload_new(s, "data/", &u), 0);
	assert_int_equal(write_pattern(u, 0, len), 0);
	assert_int_equal(bkr_store_upload_publish(u, name), 0);
	bkr_store_upload_free(u);
}

/* @p name holds upload_pattern's @p len bytes, every one where it was written. */
static void expect_pattern(bkr_store *s, const char *name, size_t len)
{
	uint8_t *got;
	size_t got_len;
	assert_int_equal(bkr_store_get(s, name, len + 1, &got, &got_len), 0);
	assert_int_equal(got_len, len);
	for (size_t i = 0; i < len; i++) {
		if (got[i] != direct_byte(i))
			fail_msg("%s: byte %zu is 0x%02x, not 0x%02x", name, i, got[i], direct_byte(i));
	}
	free(got);
}

/* Pages of @p path's first @p len bytes in the page cache. */
static size_t resident_pages(const char *path, size_t len)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t n = (len + (size_t)page - 1) / (size_t)page, resident = 0;
	unsigned char *vec = calloc(n, 1);
	int fd = open(path, O_RDONLY);
	void *map;
	assert_non_null(vec);
	assert_true(fd >= 0);
	/* PROT_NONE: nothing reads it (valgrind reads the start of a readable
	 * mapping of a file, looking for an ELF header) */
	map = mmap(NULL, len, PROT_NONE, MAP_SHARED, fd, 0);
	assert_true(map != MAP_FAILED);
	assert_int_equal(mincore(map, len, vec), 0);
	for (size_t i = 0; i < n; i++)
		resident += vec[i] & 1;
	munmap(map, len);
	close(fd);
	free(vec);
	return resident;
}

/* Whether files in @p dir can be written around the page cache. */
static bool takes_direct_io(const char *dir)
{
	char path[PATH_MAX];
	struct statfs sf;
	int fd;
	if (statfs(dir, &sf) < 0 || sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC)
		return false; /* memory is their only storage */
	snprintf(path, sizeof(path), "%s/direct-probe", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_DIRECT, 0600);
	if (fd >= 0)
		close(fd);
	unlink(path);
	return fd >= 0;
}

/*
 * A local upload is staged in memory and written with O_DIRECT, window by
 * window and its last part when published: the bytes are the ones written,
 * whatever the pieces, and (where the filesystem takes O_DIRECT) the
 * published pack's aligned part is not in the page cache, the copy a backup
 * no longer pays for, however big the pack (65 MiB: past the 64 MiB staging
 * buffer that once sent the rest through the page cache); a failed write at
 * publish publishes nothing and leaves no temporary.
 */
static void test_upload_direct(void **state)
{
	struct fixture *f = *state;
	size_t len = (3u << 20) + 1234;
	char path[PATH_MAX];
	bkr_store_upload *u;
	uint64_t size;

	upload_pattern(f->s, "data/01/a.pack", len);
	snprintf(path, sizeof(path), "%s/data/01/a.pack", f->dir);
	if (takes_direct_io(f->dir))
		assert_int_equal(resident_pages(path, len & ~(size_t)4095), 0);
	expect_pattern(f->s, "data/01/a.pack", len);
	/* sizes around the alignment, and none at all */
	static const size_t sizes[] = { 4096, 4095, 4097, 1, 8192 + 17 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
		char name[64];
		snprintf(name, sizeof(name), "data/02/%zu.pack", i);
		upload_pattern(f->s, name, sizes[i]);
		expect_pattern(f->s, name, sizes[i]);
	}
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(bkr_store_upload_publish(u, "data/02/e.pack"), 0);
	bkr_store_upload_free(u);
	assert_int_equal(bkr_store_stat(f->s, "data/02/e.pack", &size), 0);
	assert_int_equal(size, 0);
	/* a pack of many staging windows, none of it through the page cache */
	len = (65u << 20) + 99;
	upload_pattern(f->s, "data/03/a.pack", len);
	snprintf(path, sizeof(path), "%s/data/03/a.pack", f->dir);
	if (takes_direct_io(f->dir))
		assert_int_equal(resident_pages(path, len & ~(size_t)4095), 0);
	expect_pattern(f->s, "data/03/a.pack", len);
	assert_int_equal(temporaries(f->s), 0);

	/* the write at publish fails: nothing published, nothing left */
	setenv("BKR_FAULT", "write:3:enospc", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, "ab", 2), 0);
	assert_int_equal(bkr_store_upload_write(u, "cd", 2), 0);
	assert_int_equal(bkr_store_upload_publish(u, "data/04/x.pack"), BKR_ENOSPC);
	assert_non_null(strstr(bkr_error_message(), ".tmp-"));
	bkr_store_upload_free(u);
	assert_int_equal(bkr_store_stat(f->s, "data/04/x.pack", &size), BKR_ENOTFOUND);
	assert_int_equal(temporaries(f->s), 0);
}

/* What test_upload_fill's fills are given: the pattern's bytes from @p off
 * on, the sizes of the pieces, and a failure to return at piece @p fail_at. */
struct filler {
	size_t off;
	size_t pieces[16];
	int n;
	int fail_at; /* 0: never */
};

static int fill_pattern(void *ctx, uint8_t *buf, size_t n)
{
	struct filler *fl = ctx;
	if (fl->n < 16)
		fl->pieces[fl->n] = n;
	if (++fl->n == fl->fail_at)
		return bkr_error_set(BKR_EIO, "filler: failed at piece %d", fl->n);
	for (size_t i = 0; i < n; i++)
		buf[i] = direct_byte(fl->off + i);
	fl->off += n;
	return 0;
}

/*
 * bkr_store_upload_fill has the bytes made in the staging windows themselves
 * (a sealed blob is never copied): a fill is handed the window's room in
 * pieces that end at the window's edge (2 MiB), the rest in the next window,
 * never one buffer of its own; a fill of several windows the same; the pack
 * holds every byte where it belongs.  A filler failing mid-way (its second
 * piece, one window already handed to the flusher) fails the fill with its
 * message, abandons the upload (no publish, no temporary, no staging
 * memory); the fault point "write" fails a fill before its filler runs.
 */
static void test_upload_fill(void **state)
{
	struct fixture *f = *state;
	const size_t window = 2u << 20;
	struct filler fl = { 0 };
	bkr_store_upload *u;
	uint64_t size;

	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(write_pattern(u, 0, window - 10), 0);
	fl.off = window - 10;
	assert_int_equal(bkr_store_upload_fill(u, 100, fill_pattern, &fl), 0);
	assert_int_equal(fl.n, 2); /* the window's last 10 bytes, then the next window's first 90 */
	assert_int_equal(fl.pieces[0], 10);
	assert_int_equal(fl.pieces[1], 90);
	/* 6 MiB across four windows: the rest of this one, two whole, a part */
	fl.n = 0;
	assert_int_equal(bkr_store_upload_fill(u, 6u << 20, fill_pattern, &fl), 0);
	assert_int_equal(fl.n, 4);
	assert_int_equal(fl.pieces[0], window - 90);
	assert_int_equal(fl.pieces[1], window);
	assert_int_equal(fl.pieces[2], window);
	assert_int_equal(fl.pieces[3], 90);
	assert_int_equal(write_pattern(u, fl.off, fl.off + 7), 0);
	assert_int_equal(bkr_store_upload_fill(u, 0, fill_pattern, &fl), 0);
	assert_int_equal(bkr_store_upload_publish(u, "data/08/a.pack"), 0);
	bkr_store_upload_free(u);
	expect_pattern(f->s, "data/08/a.pack", fl.off + 7);

	/* the filler fails at its second piece, in the next window */
	fl = (struct filler){ .off = window - 10, .fail_at = 2 };
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(write_pattern(u, 0, window - 10), 0);
	assert_int_equal(bkr_store_upload_fill(u, 100, fill_pattern, &fl), BKR_EIO);
	assert_non_null(strstr(bkr_error_message(), "filler: failed at piece 2"));
	assert_int_equal(bkr_store_upload_write(u, "x", 1), BKR_EINVAL);
	assert_int_equal(bkr_store_upload_publish(u, "data/08/b.pack"), BKR_EINVAL);
	bkr_store_upload_free(u);
	assert_int_equal(bkr_store_stat(f->s, "data/08/b.pack", &size), BKR_ENOTFOUND);
	assert_int_equal(temporaries(f->s), 0);
	assert_int_equal(bkr_store_local_staging(f->s), 0);

	/* a failing write fault: the filler never runs */
	setenv("BKR_FAULT", "write:2:enospc", 1);
	bkr_io_fault_reset();
	fl = (struct filler){ 0 };
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, "ab", 2), 0);
	assert_int_equal(bkr_store_upload_fill(u, 100, fill_pattern, &fl), BKR_ENOSPC);
	assert_int_equal(fl.n, 0);
	bkr_store_upload_free(u);
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	assert_int_equal(temporaries(f->s), 0);
}

/* This process's resident memory, in bytes (/proc/self/statm). */
static size_t resident_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *fp = fopen("/proc/self/statm", "r");
	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "%lu %lu", &size, &resident), 2);
	fclose(fp);
	return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/*
 * What staging costs in memory: an upload far bigger than its staging
 * windows (40 MiB) holds a few MiB of them whatever its size (the process's
 * resident memory grows by less than a third of what was written: a buffer
 * the size of the pack would hold all of it); windows an ended upload gave
 * back serve the next upload while another is open (no new mapping), and
 * once no upload is open - published or abandoned - nothing stays mapped and
 * the resident memory is back where it was.
 */
static void test_upload_staging_memory(void **state)
{
	struct fixture *f = *state;
	const size_t big = 40u << 20;
	bkr_store_upload *a, *b, *c;
	size_t rss0, staging;

	assert_int_equal(bkr_store_local_staging(f->s), 0);
	rss0 = resident_bytes();
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &a), 0);
	assert_int_equal(bkr_store_upload_new(f->s, "tree/", &b), 0);
	assert_int_equal(write_pattern(a, 0, big), 0);
	assert_int_equal(write_pattern(b, 0, 5000), 0);
	staging = bkr_store_local_staging(f->s);
	assert_true(staging > 0);
	assert_true(staging <= big / 3);
	assert_true(resident_bytes() < rss0 + big / 3);

	/* a's windows, given back while b is open, serve c */
	assert_int_equal(bkr_store_upload_publish(a, "data/05/a.pack"), 0);
	bkr_store_upload_free(a);
	staging = bkr_store_local_staging(f->s);
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &c), 0);
	assert_int_equal(write_pattern(c, 0, 1u << 20), 0);
	assert_int_equal(bkr_store_local_staging(f->s), staging);

	/* the last upload ends: nothing stays mapped */
	bkr_store_upload_free(c); /* abandoned */
	assert_true(bkr_store_local_staging(f->s) > 0);
	assert_int_equal(bkr_store_upload_publish(b, "tree/05/b.pack"), 0);
	assert_int_equal(bkr_store_local_staging(f->s), 0);
	bkr_store_upload_free(b);
	assert_true(resident_bytes() < rss0 + (2u << 20));
	expect_pattern(f->s, "data/05/a.pack", big);
	expect_pattern(f->s, "tree/05/b.pack", 5000);
	assert_int_equal(temporaries(f->s), 0);
}

struct uploader {
	bkr_store *s;
	int i;
	int err;
};

/* One of test_upload_threads' uploads: 7 MiB + i bytes as "data/07/<i>.pack". */
static void *uploader_main(void *arg)
{
	struct uploader *w = arg;
	bkr_store_upload *u;
	char name[64];
	snprintf(name, sizeof(name), "data/07/%d.pack", w->i);
	if ((w->err = bkr_store_upload_new(w->s, "data/", &u)) < 0)
		return NULL;
	if ((w->err = write_pattern(u, 0, (7u << 20) + (size_t)w->i)) == 0)
		w->err = bkr_store_upload_publish(u, name);
	bkr_store_upload_free(u);
	return NULL;
}

/*
 * Uploads from several threads at once share the flusher thread and the idle
 * windows: every pack holds exactly its bytes, and once all are published
 * nothing stays mapped.
 */
static void test_upload_threads(void **state)
{
	enum { N = 6 };
	struct fixture *f = *state;
	struct uploader w[N];
	pthread_t t[N];

	for (int i = 0; i < N; i++) {
		w[i] = (struct uploader){ f->s, i, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, uploader_main, &w[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].err, 0);
	}
	assert_int_equal(bkr_store_local_staging(f->s), 0);
	for (int i = 0; i < N; i++) {
		char name[64];
		snprintf(name, sizeof(name), "data/07/%d.pack", i);
		expect_pattern(f->s, name, (7u << 20) + (size_t)i);
	}
	assert_int_equal(temporaries(f->s), 0);
}

/*
 * A staging window written in the background that fails (the file size
 * limit: EFBIG) fails the upload's next write that waits for it, long before
 * the publish (an upload far bigger than a window: 24 MiB, the limit 1 MiB),
 * with the temporary's name in the message; the upload cannot be published
 * then, no temporary is left, and no staging memory stays mapped.
 */
static void flush_fails(struct fixture *f, const char *prefix, const char *name)
{
	struct rlimit old, lim;
	bkr_store_upload *u;
	uint64_t size;
	int err;

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1u << 20;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(bkr_store_upload_new(f->s, prefix, &u), 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	err = write_pattern(u, 0, 24u << 20);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(err, BKR_EIO);
	assert_non_null(strstr(bkr_error_message(), ".tmp-"));
	assert_non_null(strstr(bkr_error_message(), strerror(EFBIG)));
	assert_int_equal(bkr_store_upload_publish(u, name), BKR_EINVAL);
	bkr_store_upload_free(u);
	assert_int_equal(bkr_store_stat(f->s, name, &size), BKR_ENOTFOUND);
	assert_int_equal(temporaries(f->s), 0);
	assert_int_equal(bkr_store_local_staging(f->s), 0);
}

static void test_upload_flush_fails(void **state)
{
	flush_fails(*state, "data/", "data/06/a.pack");
}

/* The same where the temporary's path is long (three directories of 200
 * bytes): the background write's message reaches the writer whole, the
 * temporary's name and why (it was cut at 511 bytes, the why lost). */
static void test_upload_flush_fails_long_path(void **state)
{
	char prefix[700], d[201];
	memset(d, 'd', 200);
	d[200] = '\0';
	snprintf(prefix, sizeof(prefix), "data/%s/%s/%s/", d, d, d);
	flush_fails(*state, prefix, "data/06/a.pack");
}

static void test_list(void **state)
{
	struct fixture *f = *state;
	struct names l = { 0 };
	bkr_store_upload *u;
	assert_int_equal(bkr_store_put(f->s, "backups/a.json", "a", 1), 0);
	assert_int_equal(bkr_store_put(f->s, "backups/b.json", "b", 1), 0);
	assert_int_equal(bkr_store_put(f->s, "data/00/p.pack", "p", 1), 0);
	assert_int_equal(bkr_store_put(f->s, "data/ff/q.pack", "q", 1), 0);
	assert_int_equal(bkr_store_put(f->s, "config.json", "{}", 2), 0);
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);

	assert_int_equal(bkr_store_list(f->s, "backups/", collect, &l), 0);
	assert_int_equal(l.n, 2);
	assert_true(has(&l, "backups/a.json") && has(&l, "backups/b.json"));
	names_free(&l);

	assert_int_equal(bkr_store_list(f->s, "data/", collect, &l), 0);
	assert_int_equal(l.n, 3); /* two packs, one unfinished temporary */
	assert_true(has(&l, "data/00/p.pack") && has(&l, "data/ff/q.pack"));
	assert_int_equal(count_prefix(&l, ".tmp-"), 1);
	names_free(&l);

	assert_int_equal(bkr_store_list(f->s, "", collect, &l), 0);
	assert_int_equal(l.n, 6);
	assert_true(has(&l, "config.json"));
	names_free(&l);

	assert_int_equal(bkr_store_list(f->s, "runs/", collect, &l), 0);
	assert_int_equal(l.n, 0);
	assert_int_equal(bkr_store_list(f->s, "config.json/", collect, &l), 0);
	assert_int_equal(l.n, 0);

	/* the callback's error stops the listing and is returned */
	l.stop_after = 1;
	assert_int_equal(bkr_store_list(f->s, "", collect, &l), BKR_ECORRUPT);
	assert_int_equal(l.n, 1);
	names_free(&l);
	bkr_store_upload_free(u);
}

/* bkr_store_list_stamped: the stamp of each object, by name */
struct stamps {
	char name[4][64], stamp[4][BKR_STORE_STAMP_MAX];
	int n;
};

static int collect_stamped(void *ctx, const char *name, const char *stamp)
{
	struct stamps *s = ctx;
	assert_true(s->n < 4);
	snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name);
	snprintf(s->stamp[s->n], sizeof(s->stamp[0]), "%s", stamp);
	s->n++;
	return 0;
}

static const char *stamp_of(struct fixture *f, const char *name, struct stamps *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(bkr_store_list_stamped(f->s, "backups/", collect_stamped, s), 0);
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->name[i], name))
			return s->stamp[i];
	fail_msg("%s not listed", name);
	return NULL;
}

/* A manifest rewritten in place under its name, with its old size and mtime
 * (as a copy restored with cp -p, or bytes written back over a damaged one),
 * gets another stamp: the mount's watcher notices it by that (fs/watch.c). */
static void test_list_stamped(void **state)
{
	struct fixture *f = *state;
	struct stamps s1, s2, s3;
	char path[512], before[BKR_STORE_STAMP_MAX], other[BKR_STORE_STAMP_MAX];
	struct stat st;
	struct timespec times[2];
	FILE *fp;

	assert_int_equal(bkr_store_put(f->s, "backups/a.json", "good", 4), 0);
	assert_int_equal(bkr_store_put(f->s, "backups/b.json", "other", 5), 0);
	assert_int_equal(bkr_store_put(f->s, "backups/sub/c.json", "c", 1), 0);
	snprintf(before, sizeof(before), "%s", stamp_of(f, "backups/a.json", &s1));
	snprintf(other, sizeof(other), "%s", stamp_of(f, "backups/b.json", &s1));
	assert_int_equal(s1.n, 3); /* the names of bkr_store_list, subfolders too */
	assert_true(before[0] != '\0');
	assert_string_not_equal(before, other);
	/* listed again, nothing changed: the same stamps */
	assert_string_equal(stamp_of(f, "backups/a.json", &s2), before);

	/* the same size, the old mtime put back: only the change time tells */
	snprintf(path, sizeof(path), "%s/backups/a.json", f->dir);
	assert_int_equal(stat(path, &st), 0);
	usleep(20000);
	assert_non_null(fp = fopen(path, "r+"));
	assert_int_equal(fwrite("GOOD", 1, 4, fp), 4);
	assert_int_equal(fclose(fp), 0);
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
	assert_string_not_equal(stamp_of(f, "backups/a.json", &s3), before);
	assert_string_equal(stamp_of(f, "backups/b.json", &s3), other);
}

static void test_delete(void **state)
{
	struct fixture *f = *state;
	char buf[4];
	uint64_t size;
	assert_int_equal(bkr_store_put(f->s, "records/r.json", "abc", 3), 0);
	assert_int_equal(bkr_store_get_range(f->s, "records/r.json", 0, 3, buf, 0), 0); /* cached */
	assert_int_equal(bkr_store_delete(f->s, "records/r.json"), 0);
	assert_int_equal(bkr_store_stat(f->s, "records/r.json", &size), BKR_ENOTFOUND);
	assert_int_equal(bkr_store_get_range(f->s, "records/r.json", 0, 3, buf, 0), BKR_ENOTFOUND);
	assert_int_equal(bkr_store_delete(f->s, "records/r.json"), BKR_ENOTFOUND);
	/* the name is free again */
	assert_int_equal(bkr_store_put(f->s, "records/r.json", "xyz", 3), 0);
	assert_int_equal(bkr_store_get_range(f->s, "records/r.json", 0, 3, buf, 0), 0);
	assert_memory_equal(buf, "xyz", 3);
}

static void test_trash(void **state)
{
	struct fixture *f = *state;
	char buf[8];
	uint64_t size;
	assert_int_equal(bkr_store_put(f->s, "data/aa/p.pack", "pack-1", 6), 0);
	assert_int_equal(bkr_store_put(f->s, "trash/q.pack", "old", 3), 0);
	assert_int_equal(bkr_store_get_range(f->s, "data/aa/p.pack", 0, 6, buf, 0), 0);
	assert_int_equal(bkr_store_rename(f->s, "data/aa/p.pack", "trash/p.pack"), 0);
	assert_int_equal(bkr_store_stat(f->s, "data/aa/p.pack", &size), BKR_ENOTFOUND);
	assert_int_equal(bkr_store_get_range(f->s, "trash/p.pack", 0, 6, buf, 0), 0);
	assert_memory_equal(buf, "pack-1", 6);
	/* never replaces */
	assert_int_equal(bkr_store_put(f->s, "data/bb/q.pack", "new", 3), 0);
	assert_int_equal(bkr_store_rename(f->s, "data/bb/q.pack", "trash/q.pack"), BKR_EEXISTS);
	expect_content(f->s, "trash/q.pack", "old");
	expect_content(f->s, "data/bb/q.pack", "new");
	assert_int_equal(bkr_store_rename(f->s, "data/none.pack", "trash/none.pack"), BKR_ENOTFOUND);
}

static void test_locks(void **state)
{
	struct fixture *f = *state;
	bkr_store_held *a, *b, *c;
	assert_int_equal(bkr_store_lock(f->s, "locks/repo.lock", false, false, &a), 0);
	assert_int_equal(bkr_store_lock(f->s, "locks/repo.lock", false, false, &b), 0);
	assert_int_equal(bkr_store_lock(f->s, "locks/repo.lock", true, false, &c), BKR_ELOCKED);
	assert_null(c);
	bkr_store_unlock(a);
	bkr_store_unlock(b);
	assert_int_equal(bkr_store_lock(f->s, "locks/repo.lock", true, false, &c), 0);
	assert_int_equal(bkr_store_lock(f->s, "locks/repo.lock", false, false, &a), BKR_ELOCKED);
	bkr_store_unlock(c);
	bkr_store_unlock(NULL);
}

static void test_prepare_and_open(void **state)
{
	struct fixture *f = *state;
	char sub[512];
	struct stat st;
	bkr_store *s2;
	assert_int_equal(bkr_store_prepare(f->s, "index"), 0);
	snprintf(sub, sizeof(sub), "%s/index", f->dir);
	assert_int_equal(stat(sub, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	snprintf(sub, sizeof(sub), "%s/new/repo", f->dir);
	assert_int_equal(bkr_store_local_open(&s2, sub, 0), BKR_ENOTFOUND);
	assert_int_equal(bkr_store_local_open(&s2, sub, BKR_STORE_CREATE), 0);
	assert_string_equal(bkr_store_location(s2), sub);
	assert_int_equal(bkr_store_describe(s2, "a/b", sub, sizeof(sub)), 0);
	assert_non_null(strstr(sub, "/new/repo/a/b"));
	bkr_store_free(s2);
	bkr_store_free(NULL);
	/* the dispatcher: a path is a local store, another scheme is refused */
	assert_int_equal(bkr_store_open(&s2, f->dir, 0), 0);
	assert_string_equal(bkr_store_location(s2), f->dir);
	bkr_store_free(s2);
	assert_int_equal(bkr_store_open(&s2, "ftp://host/x", 0), BKR_EINVAL);
	assert_null(s2);
	assert_non_null(strstr(bkr_error_message(), "ftp://host/x"));
	assert_true(bkr_store_is_url("s3://b"));
	assert_false(bkr_store_is_url("/tmp/s3://b"));
	assert_false(bkr_store_is_url("dir"));
	assert_false(bkr_store_is_url("://x"));
}

static void test_faults(void **state)
{
	struct fixture *f = *state;
	static const char *const points[] = { "write:1", "fsync:1", "rename:1" };
	bkr_store_upload *u;
	char buf[4];
	uint64_t size;
	for (size_t i = 0; i < sizeof(points) / sizeof(*points); i++) {
		setenv("BKR_FAULT", points[i], 1);
		bkr_io_fault_reset();
		assert_int_equal(bkr_store_put(f->s, "backups/x.json", "abc", 3), BKR_EIO);
		assert_non_null(strstr(bkr_error_message(), "injected fault"));
		assert_int_equal(bkr_store_stat(f->s, "backups/x.json", &size), BKR_ENOTFOUND);
		assert_int_equal(temporaries(f->s), 0);
	}
	/* an upload failing at its second write: nothing published, nothing left */
	setenv("BKR_FAULT", "write:2:enospc", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, "a", 1), 0);
	assert_int_equal(bkr_store_upload_write(u, "b", 1), BKR_ENOSPC);
	assert_int_equal(bkr_store_upload_publish(u, "data/00/x.pack"), BKR_EINVAL);
	bkr_store_upload_free(u);
	assert_int_equal(temporaries(f->s), 0);
	/* a read fault, then the same read works */
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	assert_int_equal(bkr_store_put(f->s, "p", "abc", 3), 0);
	setenv("BKR_FAULT", "read:1", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_store_get_range(f->s, "p", 0, 3, buf, 0), BKR_EIO);
	assert_int_equal(bkr_store_get_range(f->s, "p", 0, 3, buf, 0), 0);
	assert_memory_equal(buf, "abc", 3);
	/* a move into trash */
	setenv("BKR_FAULT", "rename:1", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_store_rename(f->s, "p", "trash/p"), BKR_EIO);
	expect_content(f->s, "p", "abc");
}

/* ---- two writers publishing into one new pack folder -------------------- */

/*
 * A writer in a child process: a store over @p dir, an upload of @p body
 * published as @p name, with BKR_FAULT=@p fault ("...:stop" stops the child:
 * the parent sees it stopped, changes the world and continues it).  Exits 0
 * when the publish succeeded, else 1 after printing its error.
 */
static pid_t writer_start(const char *dir, const char *name, const char *body, const char *fault)
{
	pid_t pid = fork();
	bkr_store *s;
	bkr_store_upload *u;
	int err;

	if (pid != 0)
		return pid;
	setenv("BKR_FAULT", fault, 1);
	bkr_io_fault_reset();
	if ((err = bkr_store_local_open(&s, dir, 0)) == 0 && (err = bkr_store_upload_new(s, "data/", &u)) == 0) {
		if ((err = bkr_store_upload_write(u, body, strlen(body))) == 0)
			err = bkr_store_upload_publish(u, name);
		bkr_store_upload_free(u);
	}
	if (err < 0)
		fprintf(stderr, "writer %s: %s\n", name, bkr_error_message());
	_exit(err < 0 ? 1 : 0);
}

/* Wait for writer @p pid to stop (@p stopped) or to exit: its exit status. */
static int writer_wait(pid_t pid, bool stopped)
{
	int st;
	assert_int_equal(waitpid(pid, &st, stopped ? WUNTRACED : 0), pid);
	if (stopped) {
		assert_true(WIFSTOPPED(st));
		return 0;
	}
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/*
 * A pack publish that fails removes the pack folder it made (data/XX) when it
 * is empty.  Another writer may have found that folder there and be about to
 * link its own pack into it: its link failed (ENOENT, an I/O error), and its
 * backup with it.  Writer A makes data/ab and stops before its link (fsync
 * stop), writer B finds data/ab there and stops before its link (rename
 * stop), A fails (rename eio) and removes data/ab, B links: B's pack is
 * published.  Then the other order: B links before A fails, and A's rmdir
 * leaves the folder holding B's pack.
 */
/* The folders a put or a pack's publish makes are durable: the directory
 * holding each is fsynced once it is made (fault point mkdir-fsync), so a
 * crash does not take the folder, and the object published into it, away;
 * a folder there already costs no fsync. */
static void test_folders_durable(void **state)
{
	struct fixture *f = *state;
	bkr_store_upload *u = NULL;
	char want[512];

	setenv("BKR_FAULT", "mkdir-fsync:1", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_store_put(f->s, "records/a.json", "a", 1), BKR_EIO);
	snprintf(want, sizeof(want), "%s/records is made, but that may not be on disk", f->dir);
	assert_non_null(strstr(bkr_error_message(), want));
	bkr_io_fault_reset(); /* records/ is there: no folder made, no fsync of one to fail */
	assert_int_equal(bkr_store_put(f->s, "records/a.json", "a", 1), 0);
	expect_content(f->s, "records/a.json", "a");
	/* a pack: data/ made by upload_new (the first pass), data/12 at its publish (the second) */
	setenv("BKR_FAULT", "mkdir-fsync:2", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_store_upload_new(f->s, "data/", &u), 0);
	assert_int_equal(bkr_store_upload_write(u, "pack", 4), 0);
	assert_int_equal(bkr_store_upload_publish(u, "data/12/x.pack"), BKR_EIO);
	snprintf(want, sizeof(want), "%s/data/12 is made, but that may not be on disk", f->dir);
	assert_non_null(strstr(bkr_error_message(), want));
	bkr_store_upload_free(u);
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
}

static void test_publish_folder_race(void **state)
{
	struct fixture *f = *state;
	char dir[PATH_MAX];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/data/ab", f->dir);
	for (int order = 0; order < 2; order++) {
		const char *bname = order ? "data/ab/b2.pack" : "data/ab/b1.pack";
		const char *bbody = order ? "b2" : "b1";
		pid_t a = writer_start(f->dir, "data/ab/a.pack", "a", "fsync:1:stop,rename:1:eio");
		writer_wait(a, true);
		assert_int_equal(stat(dir, &st), 0); /* A made it */
		pid_t b = writer_start(f->dir, bname, bbody, "rename:1:stop");
		writer_wait(b, true);
		if (order == 0) {
			kill(a, SIGCONT);
			assert_int_equal(writer_wait(a, false), 1);
			kill(b, SIGCONT);
			assert_int_equal(writer_wait(b, false), 0);
		} else {
			kill(b, SIGCONT);
			assert_int_equal(writer_wait(b, false), 0);
			kill(a, SIGCONT);
			assert_int_equal(writer_wait(a, false), 1);
		}
		expect_content(f->s, bname, bbody);
		assert_int_equal(temporaries(f->s), 0);
		assert_int_equal(stat(dir, &st), 0);
		uint64_t size;
		assert_int_equal(bkr_store_stat(f->s, "data/ab/a.pack", &size), BKR_ENOTFOUND);
		/* the next round's A makes the folder again */
		assert_int_equal(bkr_store_delete(f->s, bname), 0);
		assert_int_equal(rmdir(dir), 0);
	}
}

/* ---- many readers over more objects than the descriptor cache holds ------ */

#define NOBJ 100
#define NTHREADS 4

struct reader {
	bkr_store *s;
	int seed;
	int bad;
};

static void obj_name(char *out, size_t cap, int i)
{
	snprintf(out, cap, "data/%02x/obj%d.pack", i % 7, i);
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint32_t x = (uint32_t)r->seed * 2654435761u + 1;
	for (int k = 0; k < 2000; k++) {
		char name[64], buf[8], want[8];
		x = x * 1103515245u + 12345u;
		int i = (int)((x >> 8) % NOBJ);
		uint64_t off = (x >> 4) % 32;
		obj_name(name, sizeof(name), i);
		snprintf(want, sizeof(want), "%04d%03d", i, (int)off);
		if (bkr_store_get_range(r->s, name, off * 8, 7, buf, 0) < 0 || memcmp(buf, want, 7))
			r->bad++;
	}
	return NULL;
}

static void test_threads_lru(void **state)
{
	struct fixture *f = *state;
	pthread_t t[NTHREADS];
	struct reader rs[NTHREADS];
	for (int i = 0; i < NOBJ; i++) {
		char name[64], body[32 * 8 + 1];
		for (int o = 0; o < 32; o++)
			snprintf(body + o * 8, 9, "%04d%03d.", i, o);
		obj_name(name, sizeof(name), i);
		assert_int_equal(bkr_store_put(f->s, name, body, 32 * 8), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		rs[i] = (struct reader){ f->s, i + 1, 0 };
		assert_int_equal(pthread_create(&t[i], NULL, reader_main, &rs[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(rs[i].bad, 0);
	}
}

/* open descriptors of this process */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;
	assert_non_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* d's own */
}

/* The descriptor caches of all the local stores of a process keep at most a
 * quarter of the limit of open files: 64 kept under ulimit -n 32 left every
 * other open of the process none, and so did four stores keeping 8 each. */
static void test_fd_cache_share(void **state)
{
	struct fixture *f = *state;
	struct rlimit old, low;
	bkr_store *s, *s2;
	char name[64], buf[4];
	int before;

	for (int i = 0; i < 20; i++) {
		obj_name(name, sizeof(name), i);
		assert_int_equal(bkr_store_put(f->s, name, "abcd", 4), 0);
	}
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 32;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(bkr_io_fd_share(64), 8);
	assert_int_equal(bkr_io_fd_share(5), 5);
	assert_int_equal(bkr_store_local_open(&s, f->dir, 0), 0);
	assert_int_equal(bkr_store_local_open(&s2, f->dir, 0), 0);
	before = count_fds();
	for (int i = 0; i < 20; i++) {
		obj_name(name, sizeof(name), i);
		assert_int_equal(bkr_store_get_range(s, name, 0, 4, buf, 0), 0);
		assert_memory_equal(buf, "abcd", 4);
		assert_int_equal(bkr_store_get_range(s2, name, 0, 4, buf, 0), 0);
		assert_memory_equal(buf, "abcd", 4);
	}
	assert_true(count_fds() - before <= 8);
	bkr_store_free(s2);
	/* a store freed gives its share back */
	for (int i = 0; i < 20; i++) {
		obj_name(name, sizeof(name), i);
		assert_int_equal(bkr_store_get_range(s, name, 0, 4, buf, 0), 0);
	}
	assert_int_equal(count_fds() - before, 8);
	bkr_store_free(s);
	low.rlim_cur = 2;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	assert_int_equal(bkr_io_fd_share(64), 1);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
}

/* Out of descriptors for the fsync of a folder's parent (the folder made, the limit reached by the
 * time its parent is opened): the folder is not left made-but-not-durable (an error), it is made
 * again once the stores' idle descriptors are closed, as a temporary is (local_upload_new). */
static void test_folder_fsync_out_of_fds(void **state)
{
	struct fixture *f = *state;
	struct rlimit old, low;
	char name[64], buf[4], dir[PATH_MAX];
	int held[64], nheld = 0, fd, e, r;
	struct stat st;

	for (int i = 0; i < 4; i++) {
		obj_name(name, sizeof(name), i);
		assert_int_equal(bkr_store_put(f->s, name, "abcd", 4), 0);
		assert_int_equal(bkr_store_get_range(f->s, name, 0, 4, buf, 0), 0); /* its fd kept, idle */
	}
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)count_fds() + 8;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	while (nheld < 64 && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		held[nheld++] = fd; /* every descriptor left taken */
	e = errno;
	r = bkr_store_put(f->s, "records/new/a.json", "a", 1);
	while (nheld > 0) /* given back before any assertion: the tests after it run with them */
		close(held[--nheld]);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(e, EMFILE);
	assert_int_equal(r, 0);
	expect_content(f->s, "records/new/a.json", "a");
	snprintf(dir, sizeof(dir), "%s/records/new", f->dir);
	assert_int_equal(stat(dir, &st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_never_replaces, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_missing_and_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_get_range_bounds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listed_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folders_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_folder_fsync_out_of_fds, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_direct, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_fill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_staging_memory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_flush_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_flush_fails_long_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upload_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_stamped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_locks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prepare_and_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish_folder_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_lru, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fd_cache_share, setup, teardown),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
