/** @file
 * Unit tests of the entry helpers: file type <-> mode both ways for every
 * type, a bkr_entry from lstat(2) of real files, and which set-ID bits a
 * file may keep (bkr_entry_setid_allowed).
 */
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

#include "bkr/entry.h"

static void test_types_round_trip(void **state)
{
	(void)state;
	for (uint8_t t = BKR_FT_FILE; t <= BKR_FT_SOCK; t++) {
		mode_t m = bkr_entry_mode_of_type(t);
		assert_int_not_equal(m, 0);
		assert_int_equal(bkr_entry_type_of_mode(m | 0644), t);
	}
	assert_int_equal(bkr_entry_mode_of_type(0), 0);
	assert_int_equal(bkr_entry_mode_of_type(99), 0);
	assert_int_equal(bkr_entry_type_of_mode(0), 0);
	assert_int_equal(bkr_entry_type_of_mode(S_IFREG), BKR_FT_FILE);
	assert_int_equal(bkr_entry_type_of_mode(S_IFLNK | 0777), BKR_FT_SYMLINK);
}

static void test_set_stat(void **state)
{
	char dir[] = "/tmp/bkr-test-entry-XXXXXX", p[256];
	struct stat st;
	bkr_entry e;
	(void)state;

	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/f", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0640);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello", 5), 5);
	struct timespec ts[2] = { { 1234567890, 123456789 }, { -10, 5 } };
	assert_int_equal(futimens(fd, ts), 0);
	close(fd);
	assert_int_equal(lstat(p, &st), 0);
	memset(&e, 0xff, sizeof(e));
	e.name = (const uint8_t *)"keep";
	bkr_entry_set_stat(&e, &st);
	assert_int_equal(e.type, BKR_FT_FILE);
	assert_int_equal(e.mode, S_IFREG | 0640);
	assert_int_equal(e.size, 5);
	assert_int_equal(e.uid, getuid());
	assert_int_equal(e.inode, st.st_ino);
	assert_int_equal(e.nlink, 1);
	assert_int_equal(e.rdev, 0);
	assert_true(e.mtime_ns == -10LL * 1000000000LL + 5);
	assert_true(e.ctime_ns > 0);
	assert_string_equal((const char *)e.name, "keep"); /* untouched */
	unlink(p);

	/* a directory and a device: rdev only for devices */
	assert_int_equal(lstat(dir, &st), 0);
	bkr_entry_set_stat(&e, &st);
	assert_int_equal(e.type, BKR_FT_DIR);
	assert_int_equal(e.rdev, 0);
	assert_int_equal(lstat("/dev/null", &st), 0);
	bkr_entry_set_stat(&e, &st);
	assert_int_equal(e.type, BKR_FT_CHR);
	assert_int_equal(e.rdev, st.st_rdev);
	rmdir(dir);
}

/* set-ID bits kept only where the final owner (group) is the one asked for */
static void test_setid_allowed(void **state)
{
	struct stat st = { 0 };
	(void)state;

	st.st_uid = 1000;
	st.st_gid = 100;
	/* owner and group as asked: everything kept, sticky and permission bits too */
	assert_int_equal(bkr_entry_setid_allowed(07755, 1000, 100, &st), 07755);
	/* another owner: S_ISUID dropped; another group: S_ISGID dropped */
	assert_int_equal(bkr_entry_setid_allowed(06755, 0, 100, &st), 02755);
	assert_int_equal(bkr_entry_setid_allowed(06755, 1000, 0, &st), 04755);
	assert_int_equal(bkr_entry_setid_allowed(07755, 0, 0, &st), 01755);
	/* only the bits that are there are looked at */
	assert_int_equal(bkr_entry_setid_allowed(02750, 0, 100, &st), 02750);
	assert_int_equal(bkr_entry_setid_allowed(04750, 1000, 0, &st), 04750);
	assert_int_equal(bkr_entry_setid_allowed(0644, 0, 0, &st), 0644);
	/* not known: neither kept */
	assert_int_equal(bkr_entry_setid_allowed(06755, 1000, 100, NULL), 0755);
	/* the file type bits pass through */
	assert_int_equal(bkr_entry_setid_allowed(S_IFREG | 06755, 0, 100, &st), S_IFREG | 02755);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types_round_trip),
		cmocka_unit_test(test_set_stat),
		cmocka_unit_test(test_setid_allowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
