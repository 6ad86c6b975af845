/** @file
 * Round-trip tests: build a source tree with every edge case (empty, sparse
 * and > 4 GiB sparse files, symlinks incl. dangling, hardlinks, fifo, char
 * device, small and large xattrs, odd names, setuid, 200-deep and
 * 10,000-wide directories), back it up with each backup type, restore, and
 * compare every stat field, xattrs, content and hole positions.  Also: a
 * damaged chunk fails only its file; subset restores; no writes outside the
 * target; a thread swapping fresh entries for symlinks never gets restore to
 * change the mode of what the links point to; many small files are read
 * ahead in a few requests, not one each; a big sparse file of an odd size
 * is restored across threads, and one with a damaged chunk in its middle
 * is reported, never left with wrong bytes.
 *
 * The > 4 GiB sparse file is in the round trip of every backup type only;
 * BKR_TEST_BIG=0 leaves it out there too (for valgrind runs).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bkr/backup.h"
#include "bkr/error.h"
#include "bkr/repo.h"
#include "bkr/restore.h"
#include "bkr/walk.h"

#include "counting_store.h"
#include "testutil.h"

typedef struct {
	char dir[256];
	char repo[300];
	char src[300];
	char dst[300];
	bkr_repo *r;
	bool big;
	bool small; /* without the deep and wide directories */
} fx;

#define sh(...) assert_int_equal(tu_sh(__VA_ARGS__), 0)

static void put(const char *path, const void *data, size_t len, off_t off)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	if (len)
		assert_int_equal(pwrite(fd, data, len, off), (ssize_t)len);
	close(fd);
}

/* 200 directories deep, 10,000 files wide */
static void build_deep_wide(const char *s)
{
	char p[4096];

	/* deep */
	size_t n = (size_t)snprintf(p, sizeof(p), "%s/deep", s);
	assert_int_equal(mkdir(p, 0755), 0);
	for (int i = 0; i < 200; i++) {
		n += (size_t)snprintf(p + n, sizeof(p) - n, "/d");
		assert_int_equal(mkdir(p, 0750), 0);
	}
	snprintf(p + n, sizeof(p) - n, "/bottom");
	put(p, "bottom", 6, 0);
	/* wide */
	snprintf(p, sizeof(p), "%s/wide", s);
	assert_int_equal(mkdir(p, 0755), 0);
	for (int i = 0; i < 10000; i++) {
		char q[4200], d[32];
		snprintf(q, sizeof(q), "%s/wide/f%05d", s, i);
		int k = snprintf(d, sizeof(d), "%d", i);
		put(q, d, (size_t)k, 0);
	}
}

static void build_tree(fx *f)
{
	char p[4096];
	const char *s = f->src;

	snprintf(p, sizeof(p), "%s/empty", s);
	put(p, "", 0, 0);
	snprintf(p, sizeof(p), "%s/plain.txt", s);
	put(p, "plain text\n", 11, 0);
	/* sparse: data, hole, data, trailing hole */
	snprintf(p, sizeof(p), "%s/sparse", s);
	char blk[8192];
	memset(blk, 'S', sizeof(blk));
	put(p, blk, sizeof(blk), 0);
	put(p, blk, sizeof(blk), 1 << 20);
	assert_int_equal(truncate(p, 3 << 20), 0);
	if (f->big) {
		snprintf(p, sizeof(p), "%s/huge", s);
		put(p, "tail", 4, (off_t)(4ULL << 30) + 4096);
	}
	/* symlinks */
	snprintf(p, sizeof(p), "%s/link", s);
	assert_int_equal(symlink("plain.txt", p), 0);
	snprintf(p, sizeof(p), "%s/dangling", s);
	assert_int_equal(symlink("/nonexistent/target", p), 0);
	/* hardlinks: 3 names, one in another directory */
	sh("mkdir -p '%s/hl'", s);
	snprintf(p, sizeof(p), "%s/hl/a", s);
	put(p, "linked content\n", 15, 0);
	sh("ln '%s/hl/a' '%s/hl/b' && ln '%s/hl/a' '%s/hl_c'", s, s, s, s);
	/* fifo and a char device */
	snprintf(p, sizeof(p), "%s/fifo", s);
	assert_int_equal(mkfifo(p, 0640), 0);
	snprintf(p, sizeof(p), "%s/null", s);
	assert_int_equal(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
	/* xattrs, small and > 4096 */
	snprintf(p, sizeof(p), "%s/xattr", s);
	put(p, "x", 1, 0);
	assert_int_equal(setxattr(p, "user.small", "v", 1, 0), 0);
	char *bigx = malloc(6000);
	for (int i = 0; i < 6000; i++)
		bigx[i] = (char)(i * 7);
	/* ext4 without ea_inode refuses values over a block: then no large one */
	if (setxattr(p, "user.large", bigx, 6000, 0) != 0)
		print_message("no large xattr support here: %s\n", strerror(errno));
	free(bigx);
	/* odd names */
	snprintf(p, sizeof(p), "%s/with space", s);
	put(p, "1", 1, 0);
	snprintf(p, sizeof(p), "%s/new\nline", s);
	put(p, "2", 1, 0);
	snprintf(p, sizeof(p), "%s/bytes\xff\xfe\x01", s);
	put(p, "3", 1, 0);
	/* setuid, odd owner */
	snprintf(p, sizeof(p), "%s/suid", s);
	put(p, "#!/bin/sh\n", 10, 0);
	assert_int_equal(chown(p, 12345, 54321), 0);
	assert_int_equal(chmod(p, 04755), 0);
	if (!f->small)
		build_deep_wide(s);
	/* times in the past with ns, dirs too */
	sh("find '%s' -exec touch -h -d '2020-01-02 03:04:05.123456789' {} +", s);
}

/* the tree; with the > 4 GiB sparse file when @p big (and BKR_TEST_BIG is not 0);
 * without the deep and wide directories when @p small */
static int setup_tree(void **state, bool big, bool small)
{
	fx *f = calloc(1, sizeof(*f));
	const char *env = getenv("BKR_TEST_BIG");
	f->big = big && (!env || strcmp(env, "0") != 0);
	f->small = small;
	/* tmpfs has large user xattrs and holes; ext4 may lack the former */
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(f->dir, sizeof(f->dir), "%s/bkr-test-restore-XXXXXX", tmp);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	snprintf(f->dst, sizeof(f->dst), "%s/dst", f->dir);
	assert_int_equal(mkdir(f->src, 0755), 0);
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	assert_int_equal(bkr_repo_init(f->repo, &io), 0);
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
	build_tree(f);
	*state = f;
	return 0;
}

/* the > 4 GiB file goes through every backup type once (reading its 4 GiB costs
 * minutes): the other tests, which are about other things, leave it out */
static int setup(void **state)
{
	return setup_tree(state, false, false);
}

static int setup_big(void **state)
{
	return setup_tree(state, true, false);
}

/* for the tests that restore one directory of the tree (src/owners, src/hl) and look at
 * nothing else: the 10,200 entries of deep and wide, backed up and removed unread, were
 * most of their time (under valgrind, ~10 s of the test's 100) */
static int setup_small(void **state)
{
	return setup_tree(state, false, true);
}

static int teardown(void **state)
{
	fx *f = *state;
	bkr_repo_free(f->r);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static int backup(fx *f, bkr_backup_type type, bkr_manifest **m)
{
	bkr_source_spec s = { "src", f->src, NULL, 0 };
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	o.type = type;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "h";
	int err = bkr_backup_run(f->r, &o, m);
	if (err < 0)
		print_message("backup: %s\n", bkr_error_message());
	return err;
}

static int restore_threads; /* bkr_restore_options.threads of restore() */

static int restore(fx *f, const bkr_manifest *m, const char *const *paths, size_t n, bkr_restore_stats *st)
{
	bkr_restore_options o = BKR_RESTORE_OPTIONS_INIT;
	o.threads = restore_threads;
	o.target = f->dst;
	o.paths = paths;
	o.npaths = n;
	o.numeric_ids = true;
	int err = bkr_restore_run(f->r, m, &o, st);
	if (err < 0)
		print_message("restore: %s\n", bkr_error_message());
	return err;
}

/* ---- comparison --------------------------------------------------------- */

typedef struct { ino_t src, dst; } ino_pair;

typedef struct {
	ino_pair *pairs;
	size_t n, cap;
	size_t entries;
} cmp_state;

static void cmp_xattrs(const char *a, const char *b)
{
	char la[4096], lb[4096];
	ssize_t na = llistxattr(a, la, sizeof(la)), nb = llistxattr(b, lb, sizeof(lb));
	if (na < 0)
		na = 0;
	if (nb < 0)
		nb = 0;
	assert_int_equal(na, nb);
	for (ssize_t i = 0; i < na; i += (ssize_t)strlen(la + i) + 1) {
		char va[8192], vb[8192];
		ssize_t x = lgetxattr(a, la + i, va, sizeof(va)), y = lgetxattr(b, la + i, vb, sizeof(vb));
		assert_int_equal(x, y);
		assert_true(x < 0 || memcmp(va, vb, (size_t)x) == 0);
	}
}

static void cmp_content(const char *a, const char *b, off_t size)
{
	int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
	assert_true(fa >= 0 && fb >= 0);
	/* holes at the same places */
	off_t pa = 0, pb = 0;
	while (pa < size) {
		off_t da = lseek(fa, pa, SEEK_DATA), db = lseek(fb, pb, SEEK_DATA);
		assert_int_equal(da, db);
		if (da < 0)
			break;
		off_t ha = lseek(fa, da, SEEK_HOLE), hb = lseek(fb, db, SEEK_HOLE);
		assert_int_equal(ha, hb);
		static char ba[1 << 16], bb[1 << 16];
		for (off_t o = da; o < ha;) {
			size_t k = (size_t)(ha - o) < sizeof(ba) ? (size_t)(ha - o) : sizeof(ba);
			assert_int_equal(pread(fa, ba, k, o), (ssize_t)k);
			assert_int_equal(pread(fb, bb, k, o), (ssize_t)k);
			assert_memory_equal(ba, bb, k);
			o += (off_t)k;
		}
		pa = pb = ha;
	}
	close(fa);
	close(fb);
}

/* Compare @p a (source) and @p b (restored) recursively, iteratively. */
static void compare_trees(const char *a0, const char *b0, cmp_state *cs)
{
	typedef struct { char *a, *b; } item;
	item *stack = malloc(sizeof(item) * 64);
	size_t n = 0, cap = 64;
	stack[n++] = (item){ strdup(a0), strdup(b0) };
	while (n > 0) {
		item it = stack[--n];
		struct stat sa, sb;
		assert_int_equal(lstat(it.a, &sa), 0);
		if (lstat(it.b, &sb) != 0)
			fail_msg("missing in restore: %s", it.b);
		cs->entries++;
		assert_int_equal(sa.st_mode, sb.st_mode);
		assert_int_equal(sa.st_uid, sb.st_uid);
		assert_int_equal(sa.st_gid, sb.st_gid);
		assert_int_equal(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
		assert_int_equal(sa.st_mtim.tv_nsec, sb.st_mtim.tv_nsec);
		if (!S_ISDIR(sa.st_mode)) {
			assert_int_equal(sa.st_size, sb.st_size);
			assert_int_equal(sa.st_nlink, sb.st_nlink);
		}
		assert_int_equal(sa.st_rdev, sb.st_rdev);
		if (!S_ISLNK(sa.st_mode))
			cmp_xattrs(it.a, it.b);
		if (S_ISLNK(sa.st_mode)) {
			char ta[4096], tb[4096];
			ssize_t x = readlink(it.a, ta, sizeof(ta)), y = readlink(it.b, tb, sizeof(tb));
			assert_int_equal(x, y);
			assert_memory_equal(ta, tb, (size_t)x);
		}
		if (S_ISREG(sa.st_mode)) {
			cmp_content(it.a, it.b, sa.st_size);
			if (sa.st_nlink > 1) {
				bool found = false;
				for (size_t i = 0; i < cs->n; i++) {
					if (cs->pairs[i].src == sa.st_ino) {
						assert_int_equal(cs->pairs[i].dst, sb.st_ino);
						found = true;
					} else {
						assert_int_not_equal(cs->pairs[i].dst, sb.st_ino);
					}
				}
				if (!found) {
					if (cs->n == cs->cap) {
						cs->cap = cs->cap ? cs->cap * 2 : 8;
						cs->pairs = realloc(cs->pairs, cs->cap * sizeof(*cs->pairs));
					}
					cs->pairs[cs->n++] = (ino_pair){ sa.st_ino, sb.st_ino };
				}
			}
		}
		if (S_ISDIR(sa.st_mode)) {
			DIR *d = opendir(it.a);
			struct dirent *de;
			size_t na = 0, nb = 0;
			assert_non_null(d);
			while ((de = readdir(d))) {
				if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
					continue;
				na++;
				if (n == cap) {
					cap *= 2;
					stack = realloc(stack, cap * sizeof(item));
				}
				char *x = malloc(strlen(it.a) + strlen(de->d_name) + 2);
				char *y = malloc(strlen(it.b) + strlen(de->d_name) + 2);
				sprintf(x, "%s/%s", it.a, de->d_name);
				sprintf(y, "%s/%s", it.b, de->d_name);
				stack[n++] = (item){ x, y };
			}
			closedir(d);
			d = opendir(it.b);
			assert_non_null(d);
			while ((de = readdir(d)))
				if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
					nb++;
			closedir(d);
			assert_int_equal(na, nb);
		}
		free(it.a);
		free(it.b);
	}
	free(stack);
}

static void check_roundtrip(fx *f, const bkr_manifest *m)
{
	bkr_restore_stats st;
	cmp_state cs = { 0 };
	char b[512];

	sh("rm -rf '%s'", f->dst);
	assert_int_equal(restore(f, m, NULL, 0, &st), 0);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.hardlinks, 2);
	snprintf(b, sizeof(b), "%s/src", f->dst);
	compare_trees(f->src, b, &cs);
	assert_true(cs.entries > 10000 + 200);
	free(cs.pairs);
}

static void test_roundtrip_all_types(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	static const bkr_backup_type types[] = { BKR_BACKUP_FULL, BKR_BACKUP_INCREMENTAL,
						 BKR_BACKUP_DIFFERENTIAL, BKR_BACKUP_SNAPSHOT };
	bkr_id first;

	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(backup(f, types[i], &m), 0);
		assert_int_equal(m->nwarnings, 0);
		if (i == 0)
			first = m->tree;
		else
			assert_int_equal(bkr_id_cmp(&first, &m->tree), 0);
		/* the same tree each time: restored by one worker per CPU, without workers
		 * (the walking thread reads), and by more workers than cores */
		restore_threads = i == 1 ? 1 : i == 2 ? 8 : 0;
		check_roundtrip(f, m);
		restore_threads = 0;
		bkr_manifest_free(m);
		m = NULL;
	}
}

/*
 * A file with more data than restore lets one file have in flight (32 MiB),
 * first in the walk, before ten thousand small files: the workers take its
 * chunks in turn with the small files' while the walk goes on, and every
 * file is written in order and checks out; by two workers and by eight.
 */
static void test_big_beside_small(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	char p[4200];
	uint64_t x = 88172645463325252ULL;
	size_t blk = 1 << 20;
	uint64_t *buf = malloc(blk);

	assert_non_null(buf);
	snprintf(p, sizeof(p), "%s/a-big", f->src);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	for (int b = 0; b < 40; b++) {
		for (size_t i = 0; i < blk / sizeof(*buf); i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[i] = x;
		}
		assert_int_equal(write(fd, buf, blk), (ssize_t)blk);
	}
	close(fd);
	free(buf);
	sh("touch -d '2020-01-02 03:04:05.123456789' '%s' '%s'", p, f->src);
	assert_int_equal(backup(f, BKR_BACKUP_FULL, &m), 0);
	for (int t = 0; t < 2; t++) {
		restore_threads = t ? 8 : 2;
		check_roundtrip(f, m);
	}
	restore_threads = 0;
	bkr_manifest_free(m);
}

/* @p len pseudo-random bytes (xorshift from *@p x) at @p off of @p fd */
static void put_random(int fd, uint64_t *x, size_t len, off_t off)
{
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	for (size_t i = 0; i < len; i++) {
		*x ^= *x << 13;
		*x ^= *x >> 7;
		*x ^= *x << 17;
		buf[i] = (uint8_t)(*x >> 24);
	}
	assert_int_equal(pwrite(fd, buf, len, off), (ssize_t)len);
	free(buf);
}

/*
 * One big file of an odd size with holes (in its middle and at its end),
 * more data than restore lets one file have in flight: its chunks are read
 * and decompressed by every worker in any order, written and hashed in
 * order, and the file comes back byte for byte with its holes, by two
 * workers and by eight.  Then a chunk in its middle is damaged: the file is
 * reported, naming that chunk, and is not there (never a file with wrong
 * bytes in it), whatever was written of it before the damage was found.
 */
static void test_big_across_threads(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	bkr_restore_stats st;
	static const char *const paths[] = { "src/bigdir" };
	const off_t size = (off_t)(45u << 20) + 12345;
	uint64_t x = 2463534242ULL;
	char p[4200], q[4200];

	snprintf(p, sizeof(p), "%s/bigdir", f->src);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/bigdir/big", f->src);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	put_random(fd, &x, (20u << 20) + 777, 0);
	put_random(fd, &x, (15u << 20) + 4321, (off_t)(24u << 20) + 100);
	put_random(fd, &x, 333333, (off_t)(41u << 20) + 5);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
	sh("touch -d '2020-01-02 03:04:05.123456789' '%s' '%s/bigdir'", p, f->src);
	assert_int_equal(backup(f, BKR_BACKUP_FULL, &m), 0);

	snprintf(q, sizeof(q), "%s/src/bigdir", f->dst);
	for (int t = 0; t < 2; t++) {
		cmp_state cs = { 0 };
		restore_threads = t ? 8 : 2;
		sh("rm -rf '%s'", f->dst);
		assert_int_equal(restore(f, m, paths, 1, &st), 0);
		assert_int_equal(st.errors, 0);
		assert_int_equal(st.files, 1);
		snprintf(p, sizeof(p), "%s/bigdir", f->src);
		compare_trees(p, q, &cs);
		assert_int_equal(cs.entries, 2);
		free(cs.pairs);
	}

	/* damage the middle chunk's stored bytes in its pack */
	bkr_entry e;
	bkr_dir *h = NULL;
	const bkr_tree *leaf;
	uint32_t li;
	bkr_chunk_ref *chunks = NULL;
	size_t n = 0;
	bkr_index_entry ie;
	char hex[BKR_ID_HEX], want[64];
	assert_int_equal(bkr_walk_resolve(f->r, &m->tree, "src/bigdir/big", &e, &h, &leaf, &li), 0);
	assert_int_equal(bkr_tree_chunks(leaf, li, &chunks, &n), 0);
	assert_true(n >= 8);
	assert_int_equal(bkr_repo_lookup(f->r, &chunks[n / 2].id, &ie), 0);
	bkr_id_to_hex(&chunks[n / 2].id, hex);
	snprintf(want, sizeof(want), "chunk %zu (%s)", n / 2, hex);
	assert_int_equal(bkr_repo_pack_path(f->r, &ie.pack, BKR_BLOB_DATA, p, sizeof(p)), 0);
	free(chunks);
	bkr_dir_free(h);
	fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	uint8_t buf[4];
	off_t at = (off_t)ie.offset + ie.stored_len / 2;
	assert_int_equal(pread(fd, buf, 4, at), 4);
	buf[0] ^= 0xff;
	buf[3] ^= 0x55;
	assert_int_equal(pwrite(fd, buf, 4, at), 4);
	close(fd);
	for (int t = 0; t < 2; t++) {
		bkr_repo_free(f->r);
		assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
		restore_threads = t ? 8 : 2;
		sh("rm -rf '%s'", f->dst);
		assert_int_equal(restore(f, m, paths, 1, &st), BKR_ECORRUPT);
		assert_non_null(strstr(bkr_error_message(), "src/bigdir/big"));
		assert_non_null(strstr(bkr_error_message(), want));
		assert_int_equal(st.errors, 1);
		assert_int_equal(st.files, 0);
		struct stat sb;
		snprintf(p, sizeof(p), "%s/big", q);
		assert_int_equal(lstat(p, &sb), -1);
		/* nor any other name in its directory: no temporary left behind */
		DIR *d = opendir(q);
		assert_non_null(d);
		struct dirent *de;
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
				fail_msg("left in the target: %s", de->d_name);
		closedir(d);
	}
	restore_threads = 0;
	bkr_manifest_free(m);
}

/*
 * A target directory setgid to another group: the directories restore makes
 * in it take that group (and the setgid bit) until their own attributes are
 * set, so what is made in them is not our group's; every entry gets its own
 * owner and group back all the same (restore leaves out the chown only where
 * what it made is ours and our group's already, as in a directory of ours).
 */
static void test_setgid_target(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	bkr_restore_stats st;
	cmp_state cs = { 0 };
	char b[512];

	assert_int_equal(backup(f, BKR_BACKUP_FULL, &m), 0);
	assert_int_equal(mkdir(f->dst, 0755), 0);
	assert_int_equal(chown(f->dst, 0, 54321), 0);
	assert_int_equal(chmod(f->dst, 02775), 0);
	assert_int_equal(restore(f, m, NULL, 0, &st), 0);
	assert_int_equal(st.errors, 0);
	snprintf(b, sizeof(b), "%s/src", f->dst);
	compare_trees(f->src, b, &cs);
	assert_true(cs.entries > 10000 + 200);
	free(cs.pairs);
	bkr_manifest_free(m);
}

/*
 * Owners by name: files owned by every user and group of this system (more
 * names than restore remembers, in an order that comes back to each), and by
 * ids without a name, get the same owner back.
 */
static void test_owner_names(void **state)
{
	fx *f = *state;
	uid_t uids[128];
	gid_t gids[128];
	size_t nu = 0, ng = 0, n;
	struct passwd *pw;
	struct group *gr;
	bkr_manifest *m = NULL;
	bkr_restore_stats st;
	static const char *const paths[] = { "src/owners" };
	char p[512], q[512];

	setpwent();
	while ((pw = getpwent()) && nu < 127)
		uids[nu++] = pw->pw_uid;
	endpwent();
	setgrent();
	while ((gr = getgrent()) && ng < 127)
		gids[ng++] = gr->gr_gid;
	endgrent();
	uids[nu++] = 12345; /* no name */
	gids[ng++] = 54321;
	n = 3 * (nu > ng ? nu : ng);
	snprintf(p, sizeof(p), "%s/owners", f->src);
	assert_int_equal(mkdir(p, 0755), 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/owners/f%03zu", f->src, i);
		put(p, "x", 1, 0);
		assert_int_equal(chown(p, uids[i * 7 % nu], gids[i * 5 % ng]), 0);
	}
	assert_int_equal(backup(f, BKR_BACKUP_FULL, &m), 0);
	bkr_restore_options o = BKR_RESTORE_OPTIONS_INIT;
	o.target = f->dst;
	o.paths = paths;
	o.npaths = 1;
	assert_int_equal(bkr_restore_run(f->r, m, &o, &st), 0);
	assert_int_equal(st.files, n);
	for (size_t i = 0; i < n; i++) {
		struct stat a, b;
		snprintf(p, sizeof(p), "%s/owners/f%03zu", f->src, i);
		snprintf(q, sizeof(q), "%s/src/owners/f%03zu", f->dst, i);
		assert_int_equal(lstat(p, &a), 0);
		assert_int_equal(lstat(q, &b), 0);
		assert_int_equal(a.st_uid, b.st_uid);
		assert_int_equal(a.st_gid, b.st_gid);
	}
	bkr_manifest_free(m);
}

static void test_subset(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	bkr_restore_stats st;
	static const char *const paths[] = { "src/hl/a", "src/wide", "src/link" };
	struct stat sb;
	char p[512];

	assert_int_equal(backup(f, BKR_BACKUP_FULL, &m), 0);
	assert_int_equal(restore(f, m, paths, 3, &st), 0);
	snprintf(p, sizeof(p), "%s/src/wide/f09999", f->dst);
	assert_int_equal(lstat(p, &sb), 0);
	snprintf(p, sizeof(p), "%s/src/link", f->dst);
	assert_int_equal(lstat(p, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	snprintf(p, sizeof(p), "%s/src/plain.txt", f->dst);
	assert_int_equal(lstat(p, &sb), -1);
	assert_int_equal(st.files, 10001);
	/* again, without overwrite: a file already there as in the backup is
	 * left alone; one that differs is an error; with overwrite, fine */
	assert_int_equal(restore(f, m, paths, 1, &st), 0);
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.unchanged, 1);
	assert_int_equal(st.files, 0);
	snprintf(p, sizeof(p), "%s/src/hl/a", f->dst);
	assert_int_equal(truncate(p, 0), 0);
	assert_int_not_equal(restore(f, m, paths, 1, &st), 0);
	assert_int_equal(st.errors, 1);
	assert_int_equal(lstat(p, &sb), 0);
	assert_int_equal(sb.st_size, 0); /* not replaced */
	bkr_restore_options o = BKR_RESTORE_OPTIONS_INIT;
	o.target = f->dst;
	o.paths = paths;
	o.npaths = 3;
	o.overwrite = true;
	assert_int_equal(bkr_restore_run(f->r, m, &o, &st), 0);
	/* a path that is not in the backup: not found, before anything is written */
	static const char *const bad[] = { "src/plain.txt", "src/nope" };
	o.paths = bad;
	o.npaths = 2;
	assert_int_equal(bkr_restore_run(f->r, m, &o, &st), BKR_ENOTFOUND);
	assert_non_null(strstr(bkr_error_message(), "src/nope"));
	assert_int_equal(st.errors, 0);
	assert_int_equal(st.files, 0);
	bkr_manifest_free(m);
}

/*
 * Many small files, stored one after another: the restore asks the store to
 * read them ahead in a few requests of a pack's range each
 * (bkr_repo_advise_blob_ahead), not one per file (on a cold cache each was a
 * small read of its own and a notification of the device: 12 % of a cold
 * restore's CPU).  Restored byte for byte all the same.
 */
static void test_advise_coalesced(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	bkr_restore_stats st;
	static const char *const paths[] = { "src/many" };
	uint64_t x = 88172645463325252ULL;
	uint64_t buf[512];
	char p[512];
	enum { NFILES = 400 };

	snprintf(p, sizeof(p), "%s/many", f->src);
	assert_int_equal(mkdir(p, 0755), 0);
	for (int i = 0; i < NFILES; i++) {
		size_t n = 1 + (size_t)i % (sizeof(buf) / sizeof(*buf));
		for (size_t k = 0; k < n; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[k] = x;
		}
		snprintf(p, sizeof(p), "%s/many/f%03d", f->src, i);
		put(p, buf, n * sizeof(*buf), 0);
	}
	assert_int_equal(backup(f, BKR_BACKUP_FULL, &m), 0);
	counting *c = counting_open(f->repo);
	bkr_repo *r = NULL;
	assert_int_equal(bkr_repo_open_store(&r, &c->base, 0), 0);
	bkr_restore_options o = BKR_RESTORE_OPTIONS_INIT;
	o.threads = 2;
	o.target = f->dst;
	o.paths = paths;
	o.npaths = 1;
	o.numeric_ids = true;
	assert_int_equal(bkr_restore_run(r, m, &o, &st), 0);
	assert_int_equal(st.files, NFILES);
	assert_int_equal(st.errors, 0);
	/* 400 files of 8 bytes to 4 KiB, about 0.8 MiB: one request per MiB ahead, and a few more */
	print_message("advice requests for %d files: %u\n", NFILES, c->advises);
	assert_true(c->advises >= 1);
	assert_true(c->advises <= NFILES / 40);
	sh("diff -r '%s/many' '%s/src/many'", f->src, f->dst);
	bkr_repo_free(r);
	bkr_manifest_free(m);
}

static int count_reports;
static void on_report(void *ctx, bool error, const char *path, const char *msg)
{
	(void)ctx;
	(void)path;
	(void)msg;
	if (error)
		count_reports++;
}

static void test_damaged_chunk(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	bkr_restore_stats st;
	char p[512];

	assert_int_equal(backup(f, BKR_BACKUP_FULL, &m), 0);
	/* damage the chunk of plain.txt in its pack: flip its bytes everywhere */
	bkr_entry e;
	bkr_dir *h = NULL;
	const bkr_tree *leaf;
	uint32_t li;
	bkr_index_entry ie;
	assert_int_equal(bkr_walk_resolve(f->r, &m->tree, "src/plain.txt", &e, &h, &leaf, &li), 0);
	assert_int_equal(bkr_repo_lookup(f->r, &e.content, &ie), 0);
	assert_int_equal(bkr_repo_pack_path(f->r, &ie.pack, BKR_BLOB_DATA, p, sizeof(p)), 0);
	bkr_dir_free(h);
	int fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	uint8_t buf[4];
	assert_int_equal(pread(fd, buf, 4, ie.offset + ie.stored_len - 4), 4);
	buf[0] ^= 0xff;
	buf[3] ^= 0x55;
	assert_int_equal(pwrite(fd, buf, 4, ie.offset + ie.stored_len - 4), 4);
	close(fd);
	bkr_repo_free(f->r);
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);

	bkr_restore_options o = BKR_RESTORE_OPTIONS_INIT;
	o.target = f->dst;
	o.numeric_ids = true;
	o.report = on_report;
	count_reports = 0;
	int err = bkr_restore_run(f->r, m, &o, &st);
	assert_int_equal(err, BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "plain.txt"));
	assert_non_null(strstr(bkr_error_message(), m->backup_id));
	assert_int_equal(st.errors, 1);
	assert_int_equal(count_reports, 1);
	/* the damaged file is absent, the others are there */
	struct stat sb;
	snprintf(p, sizeof(p), "%s/src/plain.txt", f->dst);
	assert_int_equal(lstat(p, &sb), -1);
	snprintf(p, sizeof(p), "%s/src/hl/b", f->dst);
	assert_int_equal(lstat(p, &sb), 0);
	bkr_manifest_free(m);
}

static void test_no_escape(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	bkr_restore_stats st;
	char p[512], q[512];

	assert_int_equal(backup(f, BKR_BACKUP_FULL, &m), 0);
	/* a symlink planted in the target where a directory will go */
	snprintf(p, sizeof(p), "%s/src", f->dst);
	sh("mkdir -p '%s' '%s/outside'", p, f->dir);
	snprintf(p, sizeof(p), "%s/src/hl", f->dst);
	snprintf(q, sizeof(q), "%s/outside", f->dir);
	assert_int_equal(symlink(q, p), 0);
	static const char *const paths[] = { "src/hl" };
	bkr_restore_options o = BKR_RESTORE_OPTIONS_INIT;
	o.target = f->dst;
	o.paths = paths;
	o.npaths = 1;
	(void)bkr_restore_run(f->r, m, &o, &st);
	snprintf(p, sizeof(p), "%s/outside/a", f->dir);
	struct stat sb;
	assert_int_equal(lstat(p, &sb), -1);
	o.overwrite = true;
	assert_int_equal(bkr_restore_run(f->r, m, &o, &st), 0);
	assert_int_equal(lstat(p, &sb), -1);
	snprintf(p, sizeof(p), "%s/src/hl/a", f->dst);
	assert_int_equal(lstat(p, &sb), 0);
	bkr_manifest_free(m);
}

/* ---- racing another user ----------------------------------------------- */

#define RACE_FIFOS 400

static int setup_race(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	char p[512];

	assert_int_equal(tu_mkdtemp_in(f->dir, sizeof(f->dir), "test-restore"), 0);
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	snprintf(f->dst, sizeof(f->dst), "%s/dst", f->dir);
	assert_int_equal(mkdir(f->src, 0755), 0);
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	assert_int_equal(bkr_repo_init(f->repo, &io), 0);
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);
	snprintf(p, sizeof(p), "%s/fifos", f->src);
	assert_int_equal(mkdir(p, 0777), 0);
	for (int i = 0; i < RACE_FIFOS; i++) {
		snprintf(p, sizeof(p), "%s/fifos/f%04d", f->src, i);
		assert_int_equal(mkfifo(p, 0666), 0);
		assert_int_equal(chmod(p, 0666), 0);
	}
	*state = f;
	return 0;
}

typedef struct {
	char dir[512];
	char victim[512];
	volatile int stop;
	unsigned long swaps;
} racer;

/* Another user: replace every fifo that appears in dir by a symlink to victim. */
static void *race(void *arg)
{
	racer *x = arg;
	char tmp[600], p[1024];

	snprintf(tmp, sizeof(tmp), "%s/../racer-link", x->dir);
	while (!x->stop) {
		DIR *d = opendir(x->dir);
		struct dirent *de;
		if (!d)
			continue;
		while ((de = readdir(d)) && !x->stop) {
			if (de->d_type != DT_FIFO)
				continue;
			snprintf(p, sizeof(p), "%s/%s", x->dir, de->d_name);
			unlink(tmp);
			if (symlink(x->victim, tmp) == 0 && rename(tmp, p) == 0)
				x->swaps++;
		}
		closedir(d);
	}
	return NULL;
}

static void test_swap_race(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	bkr_restore_stats st;
	struct stat sb;
	racer x = { 0 };
	pthread_t th;

	assert_int_equal(backup(f, BKR_BACKUP_FULL, &m), 0);
	snprintf(x.victim, sizeof(x.victim), "%s/victim", f->dir);
	put(x.victim, "secret", 6, 0);
	assert_int_equal(chmod(x.victim, 0600), 0);
	snprintf(x.dir, sizeof(x.dir), "%s/src/fifos", f->dst);
	for (int round = 0; round < 5; round++) {
		sh("rm -rf '%s'", f->dst);
		x.stop = 0;
		assert_int_equal(pthread_create(&th, NULL, race, &x), 0);
		(void)restore(f, m, NULL, 0, &st);
		x.stop = 1;
		pthread_join(th, NULL);
		assert_int_equal(stat(x.victim, &sb), 0);
		assert_int_equal(sb.st_mode & 07777, 0600);
	}
	print_message("%lu swaps\n", x.swaps);
	bkr_manifest_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_all_types, setup_big, teardown),
		cmocka_unit_test_setup_teardown(test_big_beside_small, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_across_threads, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_setgid_target, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subset, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_names, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_damaged_chunk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_escape, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_advise_coalesced, setup_small, teardown),
		cmocka_unit_test_setup_teardown(test_swap_race, setup_race, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
