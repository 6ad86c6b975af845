/** @file
 * Unit tests of the backup engine: the four backup types, parent selection,
 * incremental reuse (stats and identical tree ids), the racy-clean rule,
 * changed files, excludes, warnings and manifest fields.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bkr/backup.h"
#include "bkr/clock.h"
#include "bkr/error.h"
#include "bkr/repo.h"
#include "bkr/walk.h"

#include "testutil.h"
#include "counting_store.h"

typedef struct {
	char dir[256];
	char repo[300];
	char src[300];
	bkr_repo *r;
} fx;

#define sh(...) assert_int_equal(tu_sh(__VA_ARGS__), 0)

static void write_file(const char *dir, const char *name, const char *data, size_t len)
{
	char p[1024];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* Set mtime of a file to @p secs ago. */
static void age(const char *dir, const char *name, int secs)
{
	char p[1024];
	struct timespec ts[2];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= secs;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, p, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/bkr-test-backup-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->repo, sizeof(f->repo), "%s/repo", f->dir);
	snprintf(f->src, sizeof(f->src), "%s/src", f->dir);
	assert_int_equal(mkdir(f->src, 0755), 0);
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	io.chunk_min = 16 << 10;
	io.chunk_avg = 64 << 10;
	io.chunk_max = 256 << 10;
	assert_int_equal(bkr_repo_init(f->repo, &io), 0);
	assert_int_equal(bkr_repo_open(&f->r, f->repo, 0), 0);

	sh("mkdir -p %s/a/b/c %s/empty %s/skipme", f->src, f->src, f->src);
	write_file(f->src, "a/one.txt", "hello world\n", 12);
	write_file(f->src, "a/b/two.txt", "second file\n", 12);
	write_file(f->src, "skipme/x.o", "obj", 3);
	write_file(f->src, "a/junk.o", "obj", 3);
	/* a multi-chunk file: 1 MiB of pseudo-random text */
	char *big = malloc(1 << 20);
	uint32_t x = 12345;
	for (int i = 0; i < (1 << 20); i++) {
		x = x * 1103515245 + 12345;
		big[i] = (char)('a' + (x >> 16) % 26);
	}
	write_file(f->src, "a/b/c/big.txt", big, 1 << 20);
	free(big);
	char p[512];
	snprintf(p, sizeof(p), "%s/a/link", f->src);
	assert_int_equal(symlink("one.txt", p), 0);
	/* every file old enough to be trusted by an incremental */
	sh("find %s -exec touch -h -d '-10 seconds' {} +", f->src);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	bkr_repo_free(f->r);
	sh("rm -rf %s", f->dir);
	free(f);
	return 0;
}

static bkr_backup_progress last_prog;

static void on_progress(void *ctx, const bkr_backup_progress *p)
{
	(void)ctx;
	last_prog = *p;
}

static int run_with(bkr_repo *r, fx *f, bkr_backup_type type, const char *const *excl, size_t nexcl, bkr_manifest **m);

static int run(fx *f, bkr_backup_type type, const char *const *excl, size_t nexcl, bkr_manifest **m)
{
	return run_with(f->r, f, type, excl, nexcl, m);
}

static int run_on(bkr_repo *r, fx *f, bkr_backup_type type, bkr_manifest **m)
{
	return run_with(r, f, type, NULL, 0, m);
}

static int run_with(bkr_repo *r, fx *f, bkr_backup_type type, const char *const *excl, size_t nexcl, bkr_manifest **m)
{
	memset(&last_prog, 0, sizeof(last_prog));
	bkr_source_spec s = { "ws", f->src, excl, nexcl };
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	o.type = type;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "testhost";
	o.workspace_root = f->src;
	o.threads = 2;
	o.progress = on_progress;
	int err = bkr_backup_run(r, &o, m);
	if (err < 0)
		print_message("backup: %s\n", bkr_error_message());
	return err;
}

static void test_full(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	static const char *const excl[] = { "skipme", "*.o" };

	assert_int_equal(run(f, BKR_BACKUP_FULL, excl, 2, &m), 0);
	assert_non_null(m);
	assert_int_equal(m->type, BKR_BACKUP_FULL);
	assert_null(m->parent);
	assert_string_equal(m->hostname, "testhost");
	assert_string_equal(m->integrity_check, "passed");
	assert_string_equal(m->restore_test, "skipped");
	assert_int_equal(m->nsources, 1);
	assert_string_equal(m->sources[0].source, "ws");
	/* files: one.txt, two.txt, big.txt, link */
	assert_int_equal(m->sources[0].files_backed_up, 4);
	assert_int_equal(m->sources[0].total_size_bytes, 12 + 12 + (1 << 20));
	assert_int_equal(m->stats.files, 4);
	assert_true(m->stats.new_bytes >= (1 << 20));
	assert_int_equal(m->nwarnings, 0);

	/* root has the source, whose subtree is the checksum */
	bkr_entry e;
	bkr_dir *h = NULL;
	assert_int_equal(bkr_walk_resolve(f->r, &m->tree, "ws", &e, &h, NULL, NULL), 0);
	assert_int_equal(e.type, BKR_FT_DIR);
	assert_int_equal(bkr_id_cmp(&e.subtree, &m->sources[0].tree), 0);
	bkr_dir_free(h);
	assert_int_equal(bkr_walk_resolve(f->r, &m->tree, "ws/a/junk.o", &e, &h, NULL, NULL), BKR_ENOTFOUND);
	assert_int_equal(bkr_walk_resolve(f->r, &m->tree, "ws/skipme", &e, &h, NULL, NULL), BKR_ENOTFOUND);
	const bkr_tree *leaf;
	uint32_t li;
	assert_int_equal(bkr_walk_resolve(f->r, &m->tree, "ws/a/b/c/big.txt", &e, &h, &leaf, &li), 0);
	assert_int_equal(e.size, 1 << 20);
	assert_int_equal(bkr_walk_read_file(f->r, leaf, li, "big", NULL, NULL), 0);
	bkr_dir_free(h);
	bkr_manifest_free(m);
}

/*
 * A backup reads the index once: at open, and after taking the lock again
 * only when the index files changed since (a prune, another backup).  A
 * no-change incremental through a store that counts (with the local
 * store's stamps) gets each index file once, not twice; when another
 * repository handle published an index file in between, the backup reads
 * the index again and dedups against it (the changed file stored once).
 */
static void test_index_read_once(void **state)
{
	fx *f = *state;
	bkr_manifest *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL;
	bkr_repo *r2 = NULL;
	counting *c;

	assert_int_equal(run(f, BKR_BACKUP_FULL, NULL, 0, &m1), 0);
	c = counting_open(f->repo);
	c->stamped = true;
	counting_watch(c, "index");
	assert_int_equal(bkr_repo_open_store(&r2, &c->base, 0), 0);
	assert_int_equal(c->folder_gets, 1);
	assert_int_equal(run_on(r2, f, BKR_BACKUP_INCREMENTAL, &m2), 0);
	assert_int_equal(m2->stats.new_bytes, 0);
	assert_int_equal(c->folder_gets, 1); /* nothing new to index: no commit reload either */

	/* another handle stores a changed file meanwhile: r2 reads that index too */
	write_file(f->src, "a/one.txt", "HELLO WORLD\n", 12);
	age(f->src, "a/one.txt", 10);
	assert_int_equal(run(f, BKR_BACKUP_INCREMENTAL, NULL, 0, &m3), 0);
	assert_int_equal(m3->stats.new_bytes, 12);
	c->folder_gets = 0;
	assert_int_equal(run_on(r2, f, BKR_BACKUP_INCREMENTAL, &m4), 0);
	assert_int_equal(c->folder_gets, 2); /* both index files, once */
	assert_int_equal(m4->stats.new_bytes, 0);
	assert_int_equal(bkr_id_cmp(&m3->tree, &m4->tree), 0);
	bkr_repo_free(r2);
	bkr_manifest_free(m1);
	bkr_manifest_free(m2);
	bkr_manifest_free(m3);
	bkr_manifest_free(m4);
}

static void test_incremental_reuse(void **state)
{
	fx *f = *state;
	bkr_manifest *m1 = NULL, *m2 = NULL, *m3 = NULL, *m4 = NULL;

	assert_int_equal(run(f, BKR_BACKUP_FULL, NULL, 0, &m1), 0);
	/* nothing changed: everything reused, same tree */
	assert_int_equal(run(f, BKR_BACKUP_INCREMENTAL, NULL, 0, &m2), 0);
	assert_string_equal(m2->parent, m1->backup_id);
	assert_int_equal(bkr_id_cmp(&m1->tree, &m2->tree), 0);
	assert_int_equal(m2->stats.new_bytes, 0);
	assert_int_equal(m2->stats.reused_bytes, m1->stats.bytes);
	assert_int_equal(m2->stats.files, m1->stats.files);
	assert_int_equal(last_prog.files_read, 0);
	assert_int_equal(last_prog.phase, 3);

	/* change one file (same size, old mtime but new ctime): it is read */
	write_file(f->src, "a/one.txt", "HELLO WORLD\n", 12);
	age(f->src, "a/one.txt", 10);
	assert_int_equal(run(f, BKR_BACKUP_DIFFERENTIAL, NULL, 0, &m3), 0);
	assert_string_equal(m3->parent, m1->backup_id);
	assert_int_not_equal(bkr_id_cmp(&m1->tree, &m3->tree), 0);
	assert_int_equal(m3->stats.new_bytes, 12);
	assert_int_equal(last_prog.files_read, 1);
	assert_int_equal(last_prog.bytes_read, 12);
	assert_int_equal(m3->stats.reused_bytes, m1->stats.bytes - 12);
	/* the unchanged subdirectory has the identical tree */
	bkr_entry e1, e3;
	bkr_dir *h1 = NULL, *h3 = NULL;
	assert_int_equal(bkr_walk_resolve(f->r, &m1->tree, "ws/a/b", &e1, &h1, NULL, NULL), 0);
	assert_int_equal(bkr_walk_resolve(f->r, &m3->tree, "ws/a/b", &e3, &h3, NULL, NULL), 0);
	assert_int_equal(bkr_id_cmp(&e1.subtree, &e3.subtree), 0);
	bkr_dir_free(h1);
	bkr_dir_free(h3);

	/* snapshot: parent is the newest (the differential), pinned */
	assert_int_equal(run(f, BKR_BACKUP_SNAPSHOT, NULL, 0, &m4), 0);
	assert_string_equal(m4->parent, m3->backup_id);
	assert_non_null(m4->pinned_until);
	assert_int_equal(m4->stats.new_bytes, 0);
	assert_int_equal(bkr_id_cmp(&m3->tree, &m4->tree), 0);
	bkr_manifest_free(m1);
	bkr_manifest_free(m2);
	bkr_manifest_free(m3);
	bkr_manifest_free(m4);
}

static void test_racy_clean(void **state)
{
	fx *f = *state;
	bkr_manifest *m1 = NULL, *m2 = NULL;

	/* a file modified just now: the parent's copy cannot be trusted */
	write_file(f->src, "a/fresh.txt", "fresh", 5);
	assert_int_equal(run(f, BKR_BACKUP_FULL, NULL, 0, &m1), 0);
	assert_int_equal(run(f, BKR_BACKUP_INCREMENTAL, NULL, 0, &m2), 0);
	/* fresh.txt alone is read again (its blob exists already) */
	assert_int_equal(last_prog.files_read, 1);
	assert_int_equal(last_prog.bytes_read, 5);
	assert_int_equal(m2->stats.new_bytes, 0);
	assert_int_equal(m2->stats.reused_bytes, m1->stats.bytes);
	assert_int_equal(bkr_id_cmp(&m1->tree, &m2->tree), 0);
	bkr_manifest_free(m1);
	bkr_manifest_free(m2);
}

static char passed_over[128];

static void on_future(void *ctx, const char *backup_id, int64_t time_ns)
{
	(void)ctx;
	(void)time_ns;
	snprintf(passed_over, sizeof(passed_over), "%s", backup_id);
}

static void test_parent_selection(void **state)
{
	fx *f = *state;
	bkr_manifest *m1 = NULL, *p = NULL;
	bkr_source_spec s = { "ws", f->src, NULL, 0 };
	bkr_source_spec other = { "ws", "/elsewhere", NULL, 0 };

	assert_int_equal(bkr_backup_find_parent(f->r, BKR_BACKUP_INCREMENTAL, "testhost", &s, 1, bkr_time_now_ns(), NULL, NULL, &p), BKR_ENOTFOUND);
	assert_int_equal(run(f, BKR_BACKUP_INCREMENTAL, NULL, 0, &m1), 0);
	assert_null(m1->parent); /* no parent: read everything */
	assert_int_equal(bkr_backup_find_parent(f->r, BKR_BACKUP_INCREMENTAL, "testhost", &s, 1, bkr_time_now_ns(), NULL, NULL, &p), 0);
	assert_string_equal(p->backup_id, m1->backup_id);
	bkr_manifest_free(p);
	p = NULL;
	/* differential wants a full one */
	assert_int_equal(bkr_backup_find_parent(f->r, BKR_BACKUP_DIFFERENTIAL, "testhost", &s, 1, bkr_time_now_ns(), NULL, NULL, &p), BKR_ENOTFOUND);
	assert_int_equal(bkr_backup_find_parent(f->r, BKR_BACKUP_INCREMENTAL, "otherhost", &s, 1, bkr_time_now_ns(), NULL, NULL, &p), BKR_ENOTFOUND);
	assert_int_equal(bkr_backup_find_parent(f->r, BKR_BACKUP_INCREMENTAL, "testhost", &other, 1, bkr_time_now_ns(), NULL, NULL, &p), BKR_ENOTFOUND);
	/* judged 10 minutes before it was made, m1 is dated in the future (the
	 * clock was ahead): never a parent, and the callback names it */
	passed_over[0] = '\0';
	assert_int_equal(bkr_backup_find_parent(f->r, BKR_BACKUP_INCREMENTAL, "testhost", &s, 1,
						m1->time_ns - 600 * BKR_NS_PER_S, on_future, NULL, &p),
			 BKR_ENOTFOUND);
	assert_null(p);
	assert_string_equal(passed_over, m1->backup_id);
	/* within the 5 minutes of clock skew it counts */
	assert_int_equal(bkr_backup_find_parent(f->r, BKR_BACKUP_INCREMENTAL, "testhost", &s, 1,
						m1->time_ns - 60 * BKR_NS_PER_S, NULL, NULL, &p),
			 0);
	assert_string_equal(p->backup_id, m1->backup_id);
	bkr_manifest_free(p);
	bkr_manifest_free(m1);
}

static void test_bad_options(void **state)
{
	fx *f = *state;
	bkr_source_spec s = { "bad/name", f->src, NULL, 0 };
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	bkr_manifest *m = NULL;
	o.sources = &s;
	o.nsources = 1;
	assert_int_equal(bkr_backup_run(f->r, &o, &m), BKR_EINVAL);
	s.name = "ok";
	s.path = "/nonexistent/dir/for/bkr";
	assert_int_equal(bkr_backup_run(f->r, &o, &m), BKR_EINVAL);
	assert_null(m);
}

static void test_unreadable_warning(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	char p[512];

	/* a fifo where a file was is fine; a dangling name is not an error */
	snprintf(p, sizeof(p), "%s/a/fifo", f->src);
	assert_int_equal(mkfifo(p, 0644), 0);
	assert_int_equal(run(f, BKR_BACKUP_FULL, NULL, 0, &m), 0);
	assert_int_equal(m->nwarnings, 0);
	bkr_entry e;
	bkr_dir *h = NULL;
	assert_int_equal(bkr_walk_resolve(f->r, &m->tree, "ws/a/fifo", &e, &h, NULL, NULL), 0);
	assert_int_equal(e.type, BKR_FT_FIFO);
	bkr_dir_free(h);
	bkr_manifest_free(m);
}

static void test_walk_iter(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	bkr_walk *w = NULL;
	const bkr_walk_item *it;
	int n = 0, post = 0, r;

	assert_int_equal(run(f, BKR_BACKUP_FULL, NULL, 0, &m), 0);
	assert_int_equal(bkr_walk_new(&w, f->r, &m->tree, "ws/a", BKR_WALK_POST), 0);
	while ((r = bkr_walk_next(w, &it)) > 0) {
		assert_true(strncmp(it->path, "ws/a/", 5) == 0);
		if (it->post)
			post++;
		else
			n++;
	}
	assert_int_equal(r, 0);
	/* a/{b,b/c,b/c/big.txt,b/two.txt,junk.o,link,one.txt} */
	assert_int_equal(n, 7);
	assert_int_equal(post, 2);
	bkr_walk_free(w);
	assert_int_equal(bkr_walk_new(&w, f->r, &m->tree, "ws/a/one.txt", 0), BKR_EINVAL);
	bkr_manifest_free(m);
}

/* ---- a live log: appended to during the whole backup ------------------- */

/* @p name in the source: @p size bytes of text; its path into @p path. */
static void make_text_file(fx *f, const char *name, size_t size, char *path, size_t cap)
{
	char *data = malloc(size);

	assert_non_null(data);
	for (size_t i = 0; i < size; i++)
		data[i] = (char)('a' + (i * 7919) % 26);
	snprintf(path, cap, "%s/%s", f->src, name);
	write_file(f->src, name, data, size);
	free(data);
}

typedef struct {
	const char *path;
	atomic_bool stop;
} appender;

static void *append_loop(void *arg)
{
	appender *a = arg;
	int fd = open(a->path, O_WRONLY | O_APPEND);
	char line[100];

	memset(line, 'L', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	while (fd >= 0 && !atomic_load(&a->stop)) {
		if (write(fd, line, sizeof(line)) != (ssize_t)sizeof(line))
			break;
		usleep(100);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

typedef struct {
	int fd;
	uint64_t bytes;
} cmp_ctx;

static int compare_with_file(void *ctx, uint64_t offset, const uint8_t *data, size_t len)
{
	cmp_ctx *cc = ctx;
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	assert_int_equal(pread(cc->fd, buf, len, (off_t)offset), (ssize_t)len);
	assert_memory_equal(buf, data, len);
	free(buf);
	cc->bytes += len;
	return 0;
}

/*
 * A file that grows during every read (issue 10 item 10) is never dropped:
 * the backup holds a prefix of it (with a warning that says so when it kept
 * growing through every re-read), byte for byte the file's start.
 */
static void test_live_log(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	char path[512];
	size_t start = 4u << 20;
	appender a = { .path = path };
	pthread_t tid;

	make_text_file(f, "live.log", start, path, sizeof(path));
	atomic_init(&a.stop, false);
	assert_int_equal(pthread_create(&tid, NULL, append_loop, &a), 0);
	int err = run(f, BKR_BACKUP_FULL, NULL, 0, &m);
	atomic_store(&a.stop, true);
	pthread_join(tid, NULL);
	assert_int_equal(err, 0);

	bkr_entry e;
	bkr_dir *h = NULL;
	const bkr_tree *leaf;
	uint32_t li;
	assert_int_equal(bkr_walk_resolve(f->r, &m->tree, "ws/live.log", &e, &h, &leaf, &li), 0);
	assert_true(e.size >= start);
	cmp_ctx cc = { .fd = open(path, O_RDONLY) };
	assert_true(cc.fd >= 0);
	assert_int_equal(bkr_walk_read_file(f->r, leaf, li, "live.log", compare_with_file, &cc), 0);
	assert_int_equal(cc.bytes, e.size);
	close(cc.fd);
	bkr_dir_free(h);
	for (size_t i = 0; i < m->nwarnings; i++) {
		assert_non_null(strstr(m->warnings[i], "live.log"));
		assert_non_null(strstr(m->warnings[i], "grew while being read"));
	}
	bkr_manifest_free(m);
}

/* ---- big files: chunk jobs that point into the read buffer -------------- */

/* @p size bytes of text from an xorshift stream (@p seed): chunks that all differ. */
static void make_noisy_file(fx *f, const char *name, size_t size, uint64_t seed)
{
	char *data = malloc(size);
	uint64_t x = seed;

	assert_non_null(data);
	for (size_t i = 0; i < size; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (x & 7) == 0 ? '\n' : (char)('a' + (x >> 8) % 26);
	}
	write_file(f->src, name, data, size);
	free(data);
}

/*
 * Two files of several read buffers each (8 MiB), read by two workers at once
 * with chunks of 16-256 KiB: chunk jobs point into a worker's buffer, which is
 * refilled or replaced while jobs still read it.  Every byte comes back, in
 * order, under the file's content id.
 */
static void test_big_files_exact(void **state)
{
	fx *f = *state;
	bkr_manifest *m = NULL;
	const char *names[2] = { "big1.txt", "big2.txt" };
	size_t size = 20u << 20;

	make_noisy_file(f, names[0], size, 0x9e3779b97f4a7c15ULL);
	make_noisy_file(f, names[1], size + 12345, 0x2545f4914f6cdd1dULL);
	assert_int_equal(run(f, BKR_BACKUP_FULL, NULL, 0, &m), 0);
	for (int k = 0; k < 2; k++) {
		char rel[64], path[512];
		bkr_entry e;
		bkr_dir *h = NULL;
		const bkr_tree *leaf;
		uint32_t li;
		snprintf(rel, sizeof(rel), "ws/%s", names[k]);
		snprintf(path, sizeof(path), "%s/%s", f->src, names[k]);
		assert_int_equal(bkr_walk_resolve(f->r, &m->tree, rel, &e, &h, &leaf, &li), 0);
		assert_int_equal(e.size, size + (k ? 12345 : 0));
		cmp_ctx cc = { .fd = open(path, O_RDONLY) };
		assert_true(cc.fd >= 0);
		assert_int_equal(bkr_walk_read_file(f->r, leaf, li, names[k], compare_with_file, &cc), 0);
		assert_int_equal(cc.bytes, e.size);
		close(cc.fd);
		bkr_dir_free(h);
	}
	assert_int_equal(m->nwarnings, 0);
	bkr_manifest_free(m);
}

/* ---- a file rewritten in place during the whole backup ----------------- */

static void *rewrite_loop(void *arg)
{
	appender *a = arg;
	int fd = open(a->path, O_WRONLY);
	char block[100];
	unsigned k = 0;

	while (fd >= 0 && !atomic_load(&a->stop)) {
		memset(block, 'A' + (int)(k++ % 26), sizeof(block));
		if (pwrite(fd, block, sizeof(block), 0) != (ssize_t)sizeof(block))
			break;
		usleep(100);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/*
 * A file that keeps changing (not only growing) through every re-read keeps
 * its copy in the parent backup, with a warning naming the parent; never
 * nothing (issue 10 item 10).
 */
static void test_changing_keeps_parent_copy(void **state)
{
	fx *f = *state;
	bkr_manifest *m1 = NULL, *m2 = NULL;
	char path[512];
	size_t size = 32u << 20;
	appender a = { .path = path };
	pthread_t tid;

	make_text_file(f, "busy.db", size, path, sizeof(path));
	assert_int_equal(run(f, BKR_BACKUP_FULL, NULL, 0, &m1), 0);

	bkr_entry e1, e2;
	bkr_dir *h1 = NULL, *h2 = NULL;
	assert_int_equal(bkr_walk_resolve(f->r, &m1->tree, "ws/busy.db", &e1, &h1, NULL, NULL), 0);
	atomic_init(&a.stop, false);
	assert_int_equal(pthread_create(&tid, NULL, rewrite_loop, &a), 0);
	int err = run(f, BKR_BACKUP_INCREMENTAL, NULL, 0, &m2);
	atomic_store(&a.stop, true);
	pthread_join(tid, NULL);
	assert_int_equal(err, 0);
	assert_int_equal(bkr_walk_resolve(f->r, &m2->tree, "ws/busy.db", &e2, &h2, NULL, NULL), 0);
	assert_int_equal(e2.size, size);
	for (size_t i = 0; i < m2->nwarnings; i++) {
		assert_non_null(strstr(m2->warnings[i], "busy.db"));
		assert_non_null(strstr(m2->warnings[i], "kept the copy of backup"));
		assert_non_null(strstr(m2->warnings[i], m1->backup_id));
		/* the parent's content and times, not a mix */
		assert_int_equal(bkr_id_cmp(&e1.content, &e2.content), 0);
		assert_true(e1.mtime_ns == e2.mtime_ns);
	}
	bkr_dir_free(h1);
	bkr_dir_free(h2);
	bkr_manifest_free(m1);
	bkr_manifest_free(m2);
}

/*
 * A repository whose chunks may be larger than a backup chunks with (made
 * with --chunk-avg 2 MiB before init refused it): every backup fails at once
 * with one line naming config.json and its key, nothing published.
 */
static void test_chunk_max_too_large(void **state)
{
	fx *f = *state;
	bkr_repo_init_options io = BKR_REPO_INIT_OPTIONS_INIT;
	bkr_backup_options o = BKR_BACKUP_OPTIONS_INIT;
	bkr_source_spec s = { "src", f->src, NULL, 0 };
	bkr_manifest *m = NULL;
	bkr_repo *r = NULL;
	char repo[600], want[700];

	snprintf(repo, sizeof(repo), "%s/big-chunks", f->dir);
	io.chunk_min = 512 << 10;
	io.chunk_avg = 2 << 20;
	io.chunk_max = 8 << 20;
	assert_int_equal(bkr_repo_init(repo, &io), 0);
	assert_int_equal(bkr_repo_open(&r, repo, 0), 0);
	o.type = BKR_BACKUP_FULL;
	o.sources = &s;
	o.nsources = 1;
	o.hostname = "h";
	assert_int_equal(bkr_backup_run(r, &o, &m), BKR_EINVAL);
	assert_null(m);
	snprintf(want, sizeof(want),
		 "%s/config.json: key 'chunker.max': 8388608 is more than a backup can chunk with "
		 "(4194304 at most",
		 repo);
	assert_non_null(strstr(bkr_error_message(), want));
	assert_null(strchr(bkr_error_message(), '\n'));
	sh("test -z \"$(ls '%s/backups')\"", repo);
	bkr_repo_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_chunk_max_too_large, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental_reuse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_read_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_racy_clean, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parent_selection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable_warning, setup, teardown),
		cmocka_unit_test_setup_teardown(test_walk_iter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changing_keeps_parent_copy, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_files_exact, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
