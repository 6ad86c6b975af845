/** @file
 * Unit tests for bkr/utf8.h: what is UTF-8 (no overlongs, no surrogates, no
 * code points past U+10FFFF, no truncated sequences) and the U+FFFD copy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bkr/utf8.h"

static bool valid(const char *s)
{
	return bkr_utf8_valid(s, strlen(s));
}

static void test_valid(void **state)
{
	(void)state;
	assert_true(valid(""));
	assert_true(valid("conversations/a.json"));
	assert_true(valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
	assert_false(valid("caf\xe9.json"));          /* Latin-1 */
	assert_false(valid("\xc0\xaf"));              /* overlong '/' */
	assert_false(valid("\xed\xa0\x80"));          /* surrogate */
	assert_false(valid("\xf4\x90\x80\x80"));      /* past U+10FFFF */
	assert_false(valid("\xe2\x82"));              /* truncated */
	assert_int_equal(bkr_utf8_seq("\xe2\x82\xac", 3), 3);
	assert_int_equal(bkr_utf8_seq("\xe2\x82\xac", 2), 0);
}

static void test_clean(void **state)
{
	char *c = bkr_utf8_clean("caf\xe9/\xc3\xa9\xff");

	(void)state;
	assert_non_null(c);
	assert_string_equal(c, "caf\xef\xbf\xbd/\xc3\xa9\xef\xbf\xbd");
	assert_true(valid(c));
	free(c);
}

static void test_escape(void **state)
{
	char out[200], small[8];
	const char *evil = "evil\nFAKE LINE\033[31mRED\x7f\xc2\x85\\ caf\xc3\xa9 \xff.";

	(void)state;
	/* C0, DEL, C1 (U+0085), backslash and a byte that is not UTF-8; é stays */
	assert_string_equal(bkr_text_escape(out, sizeof(out), evil, strlen(evil)),
			    "evil\\x0aFAKE LINE\\x1b[31mRED\\x7f\\xc2\\x85\\\\ caf\xc3\xa9 \\xff.");
	assert_null(strchr(out, '\n'));
	/* cut short at a character, never mid-escape, marked, always terminated */
	assert_string_equal(bkr_text_escape(small, sizeof(small), "ab\ncdef", 7), "ab...");
	assert_string_equal(bkr_text_escape(small, sizeof(small), "abcdefghij", 10), "abcd...");
	assert_string_equal(bkr_text_escape(small, sizeof(small), "ab\\cd\\", 6), "ab\\\\...");
	assert_string_equal(bkr_text_escape(small, sizeof(small), "caf\xc3\xa9xyz", 8), "caf...");
	/* what fits exactly is not cut */
	assert_string_equal(bkr_text_escape(small, sizeof(small), "abcdefg", 7), "abcdefg");
	assert_string_equal(bkr_text_escape(small, sizeof(small), "abc\x01", 4), "abc\\x01");
	assert_string_equal(bkr_text_escape(small, 4, "abcdef", 6), "abc");
}

/* The control-character rule of tags and source names: C0, DEL, C1; not other bytes. */
static void test_has_control(void **state)
{
	(void)state;
	assert_false(bkr_text_has_control("plain caf\xc3\xa9 \xe2\x82\xac", 14));
	assert_false(bkr_text_has_control("not utf-8 \xff\xc2", 12)); /* a cut C1 lead byte is no control */
	assert_false(bkr_text_has_control("\xc2\xa0nbsp", 6));
	assert_true(bkr_text_has_control("a\nb", 3));
	assert_true(bkr_text_has_control("\x1b[2J", 4));
	assert_true(bkr_text_has_control("del\x7f", 4));
	assert_true(bkr_text_has_control("c1\xc2\x85", 4));
	assert_true(bkr_text_has_control("\xff" "a\tb", 4));
	assert_true(bkr_text_has_control("nul\0", 4));
}

/* bkr_text_setf: replaced whole, however long; the old string may be an argument */
static void test_setf(void **state)
{
	char *s = NULL, *path = malloc(5001), *got;
	(void)state;
	assert_non_null(path);
	memset(path, 'p', 5000);
	path[5000] = '\0';
	got = bkr_text_setf(&s, "%s: %d", "first", 1);
	assert_ptr_equal(got, s);
	assert_string_equal(s, "first: 1");
	assert_non_null(bkr_text_setf(&s, "%s, then %s", s, path)); /* appends to itself */
	assert_int_equal(strlen(s), strlen("first: 1, then ") + 5000);
	assert_memory_equal(s, "first: 1, then ppp", 18);
	assert_int_equal(s[strlen(s) - 1], 'p');
	assert_non_null(bkr_text_setf(&s, "%s", "short"));
	assert_string_equal(s, "short");
	free(s);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_has_control),
		cmocka_unit_test(test_setf),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
