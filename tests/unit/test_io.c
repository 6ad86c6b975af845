/** @file
 * Unit tests of the file layer (engine/io.c): whole-file reads and their
 * limits, exact preads, the publish protocol (never replacing unless asked,
 * no temporary left on failure), mkdir -p, and the BKR_FAULT table — which
 * pass fails, each action, several specs, and a first use from many threads
 * at once (parsed once, every pass counted once).
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
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bkr/error.h"
#include "bkr/io.h"

#include "testutil.h"

struct fixture {
	char dir[256];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	if (tu_mkdtemp_in(f->dir, sizeof(f->dir), "test-io") < 0)
		return -1;
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static size_t entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	assert_non_null(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_read_file(void **state)
{
	struct fixture *f = *state;
	char p[512];
	uint8_t *buf;
	size_t len;
	snprintf(p, sizeof(p), "%s/missing", f->dir);
	assert_int_equal(bkr_io_read_file(p, 100, &buf, &len), BKR_ENOTFOUND);
	assert_null(buf);
	assert_int_equal(bkr_io_publish(f->dir, "f", "hello", 5, BKR_IO_NOREPLACE), 0);
	snprintf(p, sizeof(p), "%s/f", f->dir);
	assert_int_equal(bkr_io_read_file(p, 5, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(buf[5], '\0');
	free(buf);
	assert_int_equal(bkr_io_read_file(p, 4, &buf, &len), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "too large"));
	/* a directory (or a fifo) is not read */
	assert_int_equal(bkr_io_read_file(f->dir, 100, &buf, &len), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "not a regular file"));
}

static void test_pread_write(void **state)
{
	struct fixture *f = *state;
	char p[512], buf[8];
	int fd;
	snprintf(p, sizeof(p), "%s/w", f->dir);
	fd = open(p, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(bkr_io_write_full(fd, "abcdef", 6, p), 0);
	assert_int_equal(bkr_io_pread_full(fd, buf, 3, 2, p), 0);
	assert_memory_equal(buf, "cde", 3);
	assert_int_equal(bkr_io_pread_full(fd, buf, 3, 4, p), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "truncated"));
	assert_int_equal(bkr_io_fsync(fd, p), 0);
	close(fd);
	assert_int_equal(bkr_io_write_full(-1, "x", 1, "nowhere"), BKR_EIO);
	assert_non_null(strstr(bkr_error_message(), "nowhere"));
}

static void test_publish(void **state)
{
	struct fixture *f = *state;
	char p[512];
	uint8_t *buf;
	size_t len;
	assert_int_equal(bkr_io_publish(f->dir, "m.json", "one", 3, BKR_IO_NOREPLACE), 0);
	assert_int_equal(bkr_io_publish(f->dir, "m.json", "two", 3, BKR_IO_NOREPLACE), BKR_EEXISTS);
	snprintf(p, sizeof(p), "%s/m.json", f->dir);
	assert_int_equal(bkr_io_read_file(p, 100, &buf, &len), 0);
	assert_memory_equal(buf, "one", 3);
	free(buf);
	assert_int_equal(bkr_io_publish(f->dir, "m.json", "three", 5, BKR_IO_REPLACE), 0);
	assert_int_equal(bkr_io_read_file(p, 100, &buf, &len), 0);
	assert_int_equal(len, 5);
	free(buf);
	assert_int_equal(bkr_io_publish(f->dir, "s", "x", 1, BKR_IO_NOREPLACE | BKR_IO_NOSYNC), 0);
	assert_int_equal(entries(f->dir), 2); /* no temporaries */
	snprintf(p, sizeof(p), "%s/no/such/dir", f->dir);
	assert_int_equal(bkr_io_publish(p, "x", "x", 1, BKR_IO_NOREPLACE), BKR_ENOTFOUND);
}

/* bkr_io_commit_at into a directory removed after its temporary was made
 * (recover's workspace or staging directory): an I/O error (exit 7) naming
 * the file, as bkr_io_commit_tmp's (test_store), not "not found" (exit 3) */
static void test_commit_at_vanished(void **state)
{
	struct fixture *f = *state;
	char sub[512], name[64];
	int dfd, fd;
	snprintf(sub, sizeof(sub), "%s/ws", f->dir);
	for (int pass = 0; pass < 3; pass++) {
		unsigned flags = pass == 1 ? BKR_IO_REPLACE : BKR_IO_NOREPLACE;
		assert_int_equal(mkdir(sub, 0700), 0);
		assert_true((dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0);
		assert_int_equal(bkr_io_tmpfile_at(dfd, ".bkr-", name, sizeof(name), &fd), 0);
		assert_int_equal(bkr_io_write_full(fd, "data", 4, "conf.json"), 0);
		if (pass == 2) { /* a symlink's commit: no descriptor */
			close(fd);
			fd = -1;
		}
		tu_rmrf(sub);
		assert_int_equal(bkr_io_commit_at(fd, dfd, name, "conf.json", flags, "ws/conf.json"), BKR_EIO);
		assert_non_null(strstr(bkr_error_message(), "ws/conf.json"));
		assert_non_null(strstr(bkr_error_message(), "No such file or directory"));
		close(dfd);
	}
	/* a directory that is there: committed */
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_true((dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0);
	assert_int_equal(bkr_io_tmpfile_at(dfd, ".bkr-", name, sizeof(name), &fd), 0);
	assert_int_equal(bkr_io_commit_at(fd, dfd, name, "conf.json", BKR_IO_NOREPLACE, "ws/conf.json"), 0);
	assert_int_equal(entries(sub), 1);
	close(dfd);
}

/* A file without a name (bkr_io_open_anon) committed with bkr_io_commit_at(tmp ""): linked to its
 * name only, never over another file (BKR_EEXISTS, the other kept, nothing left), and nothing of it in
 * the directory before; bkr_io_name_anon gives one a temporary name. */
static void test_commit_at_anon(void **state)
{
	struct fixture *f = *state;
	char name[64], *got;
	int dfd, fd;

	assert_true((dfd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0);
	assert_true((fd = bkr_io_open_anon(dfd, NULL)) >= 0); /* the tests' filesystems have O_TMPFILE (test_restore) */
	assert_int_equal(bkr_io_write_full(fd, "data", 4, "a.json"), 0);
	assert_int_equal(entries(f->dir), 0);
	assert_int_equal(bkr_io_commit_at(fd, dfd, "", "a.json", BKR_IO_NOREPLACE, "ws/a.json"), 0);
	got = tu_read(f->dir, "a.json", NULL);
	assert_string_equal(got, "data");
	free(got);
	assert_true((fd = bkr_io_open_anon(dfd, NULL)) >= 0);
	assert_int_equal(bkr_io_write_full(fd, "other", 5, "a.json"), 0);
	assert_int_equal(bkr_io_commit_at(fd, dfd, "", "a.json", BKR_IO_NOREPLACE, "ws/a.json"), BKR_EEXISTS);
	assert_non_null(strstr(bkr_error_message(), "ws/a.json"));
	got = tu_read(f->dir, "a.json", NULL);
	assert_string_equal(got, "data");
	free(got);
	assert_int_equal(entries(f->dir), 1);
	assert_true((fd = bkr_io_open_anon(dfd, NULL)) >= 0);
	assert_int_equal(bkr_io_name_anon(fd, dfd, ".bkr-", name, sizeof(name)), 0);
	assert_int_equal(strncmp(name, ".bkr-", 5), 0);
	assert_int_equal(strlen(name), 5 + 16);
	assert_int_equal(entries(f->dir), 2);
	close(fd);
	close(dfd);
}

static void test_mkdir_p_and_join(void **state)
{
	struct fixture *f = *state;
	char p[512], small[8];
	struct stat st;
	snprintf(p, sizeof(p), "%s/a/b/c", f->dir);
	assert_int_equal(bkr_io_mkdir_p(p, 0700), 0);
	assert_int_equal(bkr_io_mkdir_p(p, 0700), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(bkr_io_mkdir_p("", 0700), BKR_EINVAL);
	assert_int_equal(bkr_path_join(small, sizeof(small), "abcd", "def"), BKR_EINVAL);
	assert_int_equal(bkr_path_join(small, sizeof(small), "ab", "cd"), 0);
	/* below a directory, by components */
	assert_string_equal(bkr_path_under("/srv/ws/a/b", "/srv/ws"), "a/b");
	assert_string_equal(bkr_path_under("/srv/ws", "/srv/ws/"), "");
	assert_null(bkr_path_under("/srv/wsx/a", "/srv/ws"));
	assert_null(bkr_path_under("/srv", "/srv/ws"));
	assert_string_equal(bkr_path_under("/a", "/"), "a");
	assert_string_equal(bkr_path_under("/a", "//"), "a");
	assert_null(bkr_path_under("s3://b/p", "/"));
	assert_string_equal(small, "ab/cd");
}

/* bkr_io_mkdir_p_durable fsyncs the directory holding each one it makes
 * (fault point mkdir-fsync), only those: one there already costs none */
static void test_mkdir_p_durable(void **state)
{
	struct fixture *f = *state;
	char p[512], q[600], want[700];

	snprintf(p, sizeof(p), "%s/a/b/c", f->dir);
	setenv("BKR_FAULT", "mkdir-fsync:3", 1); /* a, b, c made: the third fsync is b's, after c */
	bkr_io_fault_reset();
	assert_int_equal(bkr_io_mkdir_p_durable(p, 0700), BKR_EIO);
	snprintf(want, sizeof(want), "%s is made, but that may not be on disk: fsync %s/a/b", p, f->dir);
	assert_non_null(strstr(bkr_error_message(), want));
	setenv("BKR_FAULT", "mkdir-fsync:1", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_io_mkdir_p_durable(p, 0700), 0); /* all there: no fsync */
	snprintf(q, sizeof(q), "%s/d", p);
	assert_int_equal(bkr_io_mkdir_p(q, 0700), 0); /* the plain one fsyncs nothing */
	snprintf(q, sizeof(q), "%s/e", p);
	assert_int_equal(bkr_io_mkdir_p_durable(q, 0700), BKR_EIO); /* one made: c fsynced, the first pass */
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
}

static void test_fault_table(void **state)
{
	struct fixture *f = *state;
	(void)f;
	setenv("BKR_FAULT", "write:3,fsync:1:enospc,bogus,read:2:eio", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_io_fault("write"), 0);
	assert_int_equal(bkr_io_fault("write"), 0);
	assert_int_equal(bkr_io_fault("write"), BKR_EIO);
	assert_non_null(strstr(bkr_error_message(), "injected fault at write"));
	assert_int_equal(bkr_io_fault("write"), 0); /* only the N-th pass */
	assert_int_equal(bkr_io_fault("fsync"), BKR_ENOSPC);
	assert_int_equal(bkr_io_fault("read"), 0);
	assert_int_equal(bkr_io_fault("read"), BKR_EIO);
	assert_int_equal(bkr_io_fault("rename"), 0);
	assert_int_equal(bkr_io_fault("bogus"), 0);
	/* a reset starts the count again; an empty BKR_FAULT injects nothing */
	bkr_io_fault_reset();
	assert_int_equal(bkr_io_fault("fsync"), BKR_ENOSPC);
	/* several specs of one point: each counts every pass, also the one
	 * another spec fired at ("write:2,write:3" fails the 2nd and 3rd) */
	setenv("BKR_FAULT", "write:2,write:3:enospc,write:5", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_io_fault("write"), 0);
	assert_int_equal(bkr_io_fault("write"), BKR_EIO);
	assert_int_equal(bkr_io_fault("write"), BKR_ENOSPC);
	assert_int_equal(bkr_io_fault("write"), 0);
	assert_int_equal(bkr_io_fault("write"), BKR_EIO);
	assert_int_equal(bkr_io_fault("write"), 0);
	setenv("BKR_FAULT", "", 1);
	bkr_io_fault_reset();
	assert_int_equal(bkr_io_fault("fsync"), 0);
}

/* The first pass through a fault point from many threads at once: the table
 * is parsed once, and exactly one pass of all of them is the N-th. */
#define NTHREADS 8
#define PASSES 500

static atomic_int fired;
static atomic_int go;

static void *fault_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&go))
		;
	for (int i = 0; i < PASSES; i++)
		if (bkr_io_fault("thread-point") < 0)
			atomic_fetch_add(&fired, 1);
	return NULL;
}

/* Run in a fresh process (TEST_IO_THREADS set): no fault point was passed
 * before, so the table is parsed by whichever thread comes first. */
static int fault_threads_child(void)
{
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		if (pthread_create(&t[i], NULL, fault_main, NULL) != 0)
			return 2;
	atomic_store(&go, 1);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	return atomic_load(&fired) == 1 ? 0 : 1;
}

static void test_fault_threads(void **state)
{
	(void)state;
	int status;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("BKR_FAULT", "thread-point:1777", 1);
		setenv("TEST_IO_THREADS", "1", 1);
		execl(program_invocation_name, program_invocation_name, (char *)NULL);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
	if (getenv("TEST_IO_THREADS"))
		return fault_threads_child();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pread_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_publish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_at_vanished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_at_anon, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p_and_join, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_p_durable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_table, setup, teardown),
		cmocka_unit_test(test_fault_threads),
	};
	return cmocka_run_group_tests_name("io", tests, NULL, NULL);
}
