/** @file
 * Unit tests of the host defaults: the host name fallback, the state
 * directory's order (absolute XDG_STATE_HOME, absolute HOME, /var/tmp/bkr-UID),
 * and the allocator tuning (OpenSSL's big blocks advised for huge pages).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <pwd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "bkr/error.h"
#include "bkr/host.h"

static void test_name(void **state)
{
	char buf[256], small[4];
	(void)state;
	bkr_host_name(buf, sizeof(buf), "given");
	assert_string_equal(buf, "given");
	bkr_host_name(buf, sizeof(buf), "");
	assert_string_equal(buf, "localhost");
	bkr_host_name(small, sizeof(small), "abcdef");
	assert_string_equal(small, "abc");
	bkr_host_name(buf, sizeof(buf), NULL);
	assert_true(buf[0] != '\0');
	char sys[256] = "";
	if (gethostname(sys, sizeof(sys)) == 0 && sys[0])
		assert_string_equal(buf, sys);
}

static void expect_dir(const char *xdg, const char *home, const char *want)
{
	if (xdg)
		setenv("XDG_STATE_HOME", xdg, 1);
	else
		unsetenv("XDG_STATE_HOME");
	if (home)
		setenv("HOME", home, 1);
	else
		unsetenv("HOME");
	char *d = bkr_host_state_dir();
	assert_non_null(d);
	assert_string_equal(d, want);
	free(d);
}

static void test_state_dir(void **state)
{
	char home[PATH_MAX + 32];
	struct passwd *pw = getpwuid(getuid());
	(void)state;
	/* without a usable HOME: the home of the password database (root's /root) */
	assert_non_null(pw);
	snprintf(home, sizeof(home), "%s/.local/state/bkr", pw->pw_dir);
	expect_dir("/x/state", "/home/u", "/x/state/bkr");
	expect_dir("/x/state/", "/home/u", "/x/state/bkr");
	expect_dir("relative", "/home/u", "/home/u/.local/state/bkr");
	expect_dir("", "/home/u/", "/home/u/.local/state/bkr");
	expect_dir(NULL, "/home/u", "/home/u/.local/state/bkr");
	expect_dir(NULL, "relative", home);
	expect_dir(NULL, NULL, home);
	expect_dir("", "", home);
}

/* In a child of uid @p uid (no entry in the password database), without HOME:
 * the state directory is /var/tmp/bkr-UID when it is that user's own (0
 * returned), else none, and the error names it and @p why (1). */
static int fallback_as(uid_t uid, const char *why)
{
	pid_t pid = fork();
	int st;
	if (pid == 0) {
		char want[64], *d;
		if (setgid(uid) < 0 || setuid(uid) < 0)
			_exit(10);
		unsetenv("HOME");
		unsetenv("XDG_STATE_HOME");
		snprintf(want, sizeof(want), "/var/tmp/bkr-%u", (unsigned)uid);
		d = bkr_host_state_dir();
		if (d) {
			int rc = strcmp(d, want) ? 11 : 0;
			free(d); /* valgrind's leak check runs at the child's exit too */
			_exit(rc);
		}
		if (!strstr(bkr_error_message(), want) || !strstr(bkr_error_message(), why))
			_exit(12);
		_exit(1);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* A uid of no user whose /var/tmp/bkr-UID is absent, into @p dir: one of its
 * own for this run, so two suites on one machine (each removing and making
 * the directory) do not meet there, as they did at a fixed 54321. */
static uid_t run_uid(char *dir, size_t cap)
{
	for (int i = 0; i < 1000; i++) {
		uint32_t r;
		uid_t uid;
		assert_int_equal(getentropy(&r, sizeof(r)), 0);
		uid = (uid_t)(1000000 + r % 1000000000u); /* above every real account, below (uid_t)-1 */
		snprintf(dir, cap, "/var/tmp/bkr-%u", (unsigned)uid);
		if (!getpwuid(uid) && access(dir, F_OK) < 0 && errno == ENOENT)
			return uid;
	}
	fail_msg("no free uid for /var/tmp/bkr-UID");
	return 0;
}

/* /var/tmp/bkr-UID, the last fallback, lies where every user may write: one
 * another user made first (a symlink to elsewhere, a directory of theirs) is
 * not used, where bkr would have written its logs and staged recovery runs */
static void test_state_dir_shared(void **state)
{
	char dir[64];
	struct stat st;
	uid_t uid;
	(void)state;
	if (getuid() != 0)
		fail_msg("test_state_dir_shared needs root (the suite runs as root)");
	uid = run_uid(dir, sizeof(dir));
	assert_int_equal(symlink("/etc", dir), 0); /* made by another user first */
	assert_int_equal(fallback_as(uid, "a symlink"), 1);
	unlink(dir);
	assert_int_equal(mkdir(dir, 0700), 0); /* root's */
	assert_int_equal(fallback_as(uid, "owned by another user"), 1);
	assert_int_equal(chown(dir, uid, uid), 0);
	assert_int_equal(chmod(dir, 0777), 0);
	assert_int_equal(fallback_as(uid, "writable by other users"), 1);
	rmdir(dir);
	assert_int_equal(fallback_as(uid, ""), 0); /* absent: made, 0700, its own */
	assert_int_equal(lstat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode) && st.st_uid == uid && (st.st_mode & 07777) == 0700);
	rmdir(dir);
}

/* The VmFlags of the mapping that holds @p addr (from /proc/self/smaps) into @p out. */
static bool vm_flags_of(const void *addr, char *out, size_t cap)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, found = false;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (in && !strncmp(line, "VmFlags:", 8)) {
			snprintf(out, cap, "%s", line + 8);
			found = true;
		}
	}
	fclose(f);
	return found;
}

/* After the tuning, OpenSSL's allocations go through bkr's functions, and a
 * block of 2 MiB or more (scrypt's working memory) is advised for huge
 * pages ("hg" in its mapping's VmFlags), one of 64 KiB is not. */
static void test_openssl_blocks(void **state)
{
	CRYPTO_malloc_fn m0, m1;
	CRYPTO_realloc_fn r;
	CRYPTO_free_fn fr;
	char flags[256];
	uint8_t *big, *small;

	(void)state;
	CRYPTO_get_mem_functions(&m0, &r, &fr);
	bkr_host_tune_openssl();
	CRYPTO_get_mem_functions(&m1, &r, &fr);
	assert_ptr_not_equal(m0, m1);

	small = OPENSSL_malloc(64u << 10); /* first: not inside the big block's pages once that is freed */
	assert_non_null(small);
	memset(small, 0, 64u << 10);

	big = OPENSSL_malloc(8u << 20);
	assert_non_null(big);
	memset(big, 0x5a, 8u << 20);
	assert_true(vm_flags_of(big + (4u << 20), flags, sizeof(flags)));
	assert_non_null(strstr(flags, " hg"));
	big = OPENSSL_realloc(big, 12u << 20);
	assert_non_null(big);
	assert_int_equal(big[(8u << 20) - 1], 0x5a);
	assert_true(vm_flags_of(big + (10u << 20), flags, sizeof(flags)));
	assert_non_null(strstr(flags, " hg"));
	OPENSSL_free(big);

	assert_true(vm_flags_of(small + (32u << 10), flags, sizeof(flags)));
	assert_null(strstr(flags, " hg"));
	OPENSSL_free(small);
}

/* bkr_host_advise_huge advises the whole aligned units inside the range
 * and nothing outside it: 8 MiB of a mapping, 2 MiB aligned, advised from
 * 1 MiB on, for 6 MiB, in 2 MiB units, gets [2, 6) MiB advised; below and
 * above stay as they were.  A range holding no whole unit changes nothing. */
static void test_advise_huge(void **state)
{
	const size_t mib = 1u << 20, huge = 2u << 20;
	char flags[256];
	uint8_t *map, *m;

	(void)state;
	map = mmap(NULL, 10 * mib, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(map != MAP_FAILED);
	m = (uint8_t *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1)); /* 2 MiB aligned, 8 MiB of room */

	bkr_host_advise_huge(m + mib, 6 * mib, huge);
	assert_true(vm_flags_of(m + 2 * mib, flags, sizeof(flags)));
	assert_non_null(strstr(flags, " hg"));
	assert_true(vm_flags_of(m + 6 * mib - 1, flags, sizeof(flags)));
	assert_non_null(strstr(flags, " hg"));
	assert_true(vm_flags_of(m + 2 * mib - 1, flags, sizeof(flags)));
	assert_null(strstr(flags, " hg"));
	assert_true(vm_flags_of(m + 6 * mib, flags, sizeof(flags)));
	assert_null(strstr(flags, " hg"));

	bkr_host_advise_huge(m + 6 * mib + mib / 2, mib + mib / 2, huge); /* [6.5, 8) MiB: no whole 2 MiB unit */
	assert_true(vm_flags_of(m + 7 * mib, flags, sizeof(flags)));
	assert_null(strstr(flags, " hg"));

	bkr_host_advise_huge(m + 6 * mib + 100, mib, 0); /* page units: [6 MiB + 4 KiB, 7 MiB) */
	assert_true(vm_flags_of(m + 6 * mib + 4096, flags, sizeof(flags)));
	assert_non_null(strstr(flags, " hg"));
	assert_true(vm_flags_of(m + 6 * mib, flags, sizeof(flags)));
	assert_null(strstr(flags, " hg"));
	munmap(map, 10 * mib);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_openssl_blocks), /* first: before OpenSSL allocates anything */
		cmocka_unit_test(test_advise_huge),
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_state_dir),
		cmocka_unit_test(test_state_dir_shared),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
