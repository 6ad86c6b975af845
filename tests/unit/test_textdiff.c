/** @file
 * Unit tests of textdiff: fixed cases written out as diff -u writes them
 * (changes, additions at either end, no newline at the end, empty sides,
 * hunks merged and apart), and random texts whose patch, applied to the
 * old text, gives the new one with as few changed lines as
 * `diff --minimal` finds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bkr/textdiff.h"

#include "testutil.h"

/* the hunks turning @p a into @p b (malloc'd) */
static char *udiff(const char *a, const char *b)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(bkr_textdiff_unified(f, (const uint8_t *)a, strlen(a), (const uint8_t *)b, strlen(b), 3), 0);
	fclose(f);
	return buf;
}

static void check(const char *a, const char *b, const char *want)
{
	char *got = udiff(a, b);
	assert_string_equal(got, want);
	free(got);
}

static void test_fixed(void **state)
{
	(void)state;
	check("a\nb\nc\n", "a\nb\nc\n", "");
	check("", "", "");
	check("a\nb\nc\n", "a\nB\nc\n", "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
	check("", "x\ny\n", "@@ -0,0 +1,2 @@\n+x\n+y\n");
	check("x\n", "", "@@ -1 +0,0 @@\n-x\n");
	check("a\n", "z\na\n", "@@ -1 +1,2 @@\n+z\n a\n");
	check("a\nb", "a\nb\n", "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n");
	check("a\nb", "a\nc", "@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n");
	/* far apart: two hunks; 6 lines apart (2 x context): one */
	check("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "0\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n0\n",
	      "@@ -1,4 +1,4 @@\n-1\n+0\n 2\n 3\n 4\n@@ -9,4 +9,4 @@\n 9\n 10\n 11\n-12\n+0\n");
	check("1\n2\n3\n4\n5\n6\n7\n8\n", "0\n2\n3\n4\n5\n6\n7\n0\n",
	      "@@ -1,8 +1,8 @@\n-1\n+0\n 2\n 3\n 4\n 5\n 6\n 7\n-8\n+0\n");
	/* an insertion in the middle */
	check("1\n2\n3\n4\n5\n6\n7\n8\n9\n", "1\n2\n3\n4\nnew\n5\n6\n7\n8\n9\n",
	      "@@ -2,6 +2,7 @@\n 2\n 3\n 4\n+new\n 5\n 6\n 7\n");
	assert_true(bkr_textdiff_binary((const uint8_t *)"a\0b", 3));
	assert_false(bkr_textdiff_binary((const uint8_t *)"ab\n", 3));
	assert_false(bkr_textdiff_binary(NULL, 0));
}

/* Apply the hunks @p d to @p a; the result (malloc'd); *changed: -/+ lines. */
static char *apply(const char *a, const char *d, size_t *changed)
{
	size_t cap = strlen(a) + strlen(d) + 1, o = 0, line = 0; /* lines of a copied */
	char *out = calloc(1, cap);
	const char *p = a, *q = d;
	char prev = 0; /* the previous line's op */

	*changed = 0;
	while (*q) {
		const char *e = strchr(q, '\n');
		size_t len = e ? (size_t)(e - q) + 1 : strlen(q);
		if (!strncmp(q, "@@ -", 4)) {
			size_t start = strtoul(q + 4, NULL, 10), n = 1;
			const char *comma = strchr(q + 4, ',');
			if (comma && comma < strchr(q + 4, ' '))
				n = strtoul(comma + 1, NULL, 10);
			if (n == 0)
				start++; /* "-l,0": after line l */
			for (; line + 1 < start; line++) { /* copy up to the hunk */
				const char *nl = strchr(p, '\n');
				size_t l = nl ? (size_t)(nl - p) + 1 : strlen(p);
				memcpy(out + o, p, l), o += l, p += l;
			}
		} else if (*q == ' ' || *q == '-') {
			const char *nl = strchr(p, '\n');
			size_t l = nl ? (size_t)(nl - p) + 1 : strlen(p);
			if (*q == ' ')
				memcpy(out + o, p, l), o += l;
			else
				(*changed)++;
			p += l, line++;
		} else if (*q == '+') {
			memcpy(out + o, q + 1, len - 1), o += len - 1;
			(*changed)++;
		} else if (*q == '\\' && prev != '-' && o && out[o - 1] == '\n') {
			o--; /* "\ No newline at end of file" after a line written out */
		}
		prev = *q;
		q += len;
	}
	memcpy(out + o, p, strlen(p) + 1);
	return out;
}

static void random_text(char *buf, size_t lines, unsigned *seed)
{
	size_t o = 0;
	for (size_t i = 0; i < lines; i++) {
		buf[o++] = (char)('a' + rand_r(seed) % 4);
		buf[o++] = '\n';
	}
	if (o && rand_r(seed) % 4 == 0)
		o--; /* no newline at the end */
	buf[o] = 0;
}

static void test_random_against_diff(void **state)
{
	char *dir = tu_mkdtemp();
	unsigned seed = 20261130;

	(void)state;
	for (int round = 0; round < 60; round++) {
		char a[200], b[200], *d, *res, *their;
		size_t changed, tlen;
		random_text(a, (size_t)(rand_r(&seed) % 40), &seed);
		random_text(b, (size_t)(rand_r(&seed) % 40), &seed);
		d = udiff(a, b);
		res = apply(a, d, &changed);
		assert_string_equal(res, b);
		/* as few changed lines as diff --minimal */
		assert_int_equal(tu_writes(dir, "a", a), 0);
		assert_int_equal(tu_writes(dir, "b", b), 0);
		assert_int_equal(tu_sh("cd %s && { diff --minimal -u a b || true; } | tail -n +3 | grep -c '^[-+]' > n || true", dir), 0);
		their = tu_read(dir, "n", &tlen);
		assert_non_null(their);
		assert_int_equal(changed, strtoul(their, NULL, 10));
		free(their);
		free(res);
		free(d);
	}
	tu_rmrf(dir);
	free(dir);
}

/* Two big texts with few lines in common (every 50th): the search cost
 * (n + m) x edits, hours for 64 MiB files (bkr log -p); it now gives up
 * after its budget and takes the rest as changed, a diff that still turns
 * a into b. */
static void test_expensive(void **state)
{
	enum { N = 200000 };
	char *a = malloc(N * 16), *b = malloc(N * 16), *d, *res;
	size_t oa = 0, ob = 0, changed = 0;

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	for (int i = 0; i < N; i++) {
		oa += (size_t)sprintf(a + oa, i % 50 ? "a%d\n" : "same\n", i);
		ob += (size_t)sprintf(b + ob, i % 50 ? "b%d\n" : "same\n", i);
	}
	d = udiff(a, b);
	res = apply(a, d, &changed);
	assert_string_equal(res, b);
	assert_true(changed >= 2 * (N - N / 50));
	free(res);
	free(d);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixed),
		cmocka_unit_test(test_random_against_diff),
		cmocka_unit_test(test_expensive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
