/** @file
 * Unified line diffs (textdiff.h).
 *
 * Both texts are cut into lines (a line keeps its '\n', so a last line
 * without one differs from the same line with one, as in diff), each with a
 * hash for quick comparison.  Common prefixes and suffixes are trimmed, then
 * the middle snake of the remaining ranges is found searching from both ends
 * at once and the two halves are solved recursively; the result marks the
 * deleted lines of a and the inserted lines of b.  The search has a budget
 * of steps (DIFF_BUDGET): texts with few lines in common cost
 * O((n + m) * edits), hours for two 64 MiB files of short lines, so once it
 * is spent every range not solved yet is taken as deleted and inserted
 * whole - a correct diff, not the smallest one.  The hunks are then made
 * as diff -u makes them: changes closer than 2 x context lines share a
 * hunk; deletions come before insertions.
 */
#include "bkr/textdiff.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"

typedef struct {
	const uint8_t *p;
	size_t len;
	uint64_t h;
} line;

/* steps of the middle-snake search (diagonals and snake lines) before giving up */
#define DIFF_BUDGET (32L << 20)

typedef struct {
	line *a, *b;
	size_t na, nb;
	bool *del, *ins;
	long *vf, *vb;   /* furthest x per diagonal, forward and backward (offset voff) */
	long voff;
	long budget;     /* steps left (DIFF_BUDGET at first) */
} dctx;

int bkr_textdiff_binary(const uint8_t *p, size_t len)
{
	return p && memchr(p, 0, len) != NULL;
}

static int split_lines(const uint8_t *t, size_t len, line **out, size_t *n)
{
	size_t cnt = 0, k = 0;
	line *v;

	for (size_t i = 0; i < len; i++)
		cnt += t[i] == '\n';
	if (len && t[len - 1] != '\n')
		cnt++;
	*n = cnt;
	if (!(v = calloc(cnt ? cnt : 1, sizeof(*v))))
		return bkr_error_oom();
	for (size_t i = 0; i < len;) {
		const uint8_t *nl = memchr(t + i, '\n', len - i);
		size_t l = nl ? (size_t)(nl - (t + i)) + 1 : len - i;
		uint64_t h = 1469598103934665603ull;
		for (size_t j = 0; j < l; j++)
			h = (h ^ t[i + j]) * 1099511628211ull;
		v[k++] = (line){ t + i, l, h };
		i += l;
	}
	*out = v;
	return 0;
}

static bool same(const line *x, const line *y)
{
	return x->h == y->h && x->len == y->len && memcmp(x->p, y->p, x->len) == 0;
}

/*
 * The middle snake of a[a0..a1) and b[b0..b1) (both non-empty, ends
 * differing): *xs,*ys .. *xe,*ye in absolute line numbers; false when the
 * budget ran out first.
 */
static bool middle_snake(dctx *c, long a0, long a1, long b0, long b1, long *xs, long *ys, long *xe, long *ye)
{
	long n = a1 - a0, m = b1 - b0, delta = n - m, max = (n + m + 1) / 2;
	bool odd = delta & 1;
	long *vf = c->vf + c->voff, *vb = c->vb + c->voff;

	vf[1] = 0;
	vb[1] = 0;
	for (long d = 0; d <= max; d++) {
		if ((c->budget -= 2 * d + 2) < 0)
			return false;
		for (long k = -d; k <= d; k += 2) {
			long x = k == -d || (k != d && vf[k - 1] < vf[k + 1]) ? vf[k + 1] : vf[k - 1] + 1, y = x - k;
			long sx = x, sy = y;
			while (x < n && y < m && same(&c->a[a0 + x], &c->b[b0 + y]))
				x++, y++;
			c->budget -= x - sx;
			vf[k] = x;
			if (odd && delta - k >= -(d - 1) && delta - k <= d - 1 && vf[k] + vb[delta - k] >= n) {
				*xs = a0 + sx, *ys = b0 + sy, *xe = a0 + x, *ye = b0 + y;
				return true;
			}
		}
		for (long k = -d; k <= d; k += 2) {
			long x = k == -d || (k != d && vb[k - 1] < vb[k + 1]) ? vb[k + 1] : vb[k - 1] + 1, y = x - k;
			long sx = x, sy = y;
			while (x < n && y < m && same(&c->a[a1 - 1 - x], &c->b[b1 - 1 - y]))
				x++, y++;
			c->budget -= x - sx;
			vb[k] = x;
			if (!odd && delta - k >= -d && delta - k <= d && vf[delta - k] + vb[k] >= n) {
				*xs = a1 - x, *ys = b1 - y, *xe = a1 - sx, *ye = b1 - sy;
				return true;
			}
		}
	}
	/* not reached: a path of at most n + m edits always exists */
	return false;
}

static void compare(dctx *c, long a0, long a1, long b0, long b1)
{
	while (a0 < a1 && b0 < b1 && same(&c->a[a0], &c->b[b0]))
		a0++, b0++;
	while (a0 < a1 && b0 < b1 && same(&c->a[a1 - 1], &c->b[b1 - 1]))
		a1--, b1--;
	long xs, ys, xe, ye;
	if (a0 == a1 || b0 == b1 || !middle_snake(c, a0, a1, b0, b1, &xs, &ys, &xe, &ye)) {
		/* one side empty, or the budget spent: all of it changed */
		for (long i = a0; i < a1; i++)
			c->del[i] = true;
		for (long j = b0; j < b1; j++)
			c->ins[j] = true;
		return;
	}
	compare(c, a0, xs, b0, ys);
	compare(c, xe, a1, ye, b1);
}

/* one edit-script step: ' ', '-' or '+', with the line */
typedef struct {
	char op;
	const line *l;
} step;

static void range(FILE *f, char sign, size_t before, size_t len)
{
	if (len == 1)
		fprintf(f, "%c%zu", sign, before + 1);
	else
		fprintf(f, "%c%zu,%zu", sign, len ? before + 1 : before, len);
}

static void put_step(FILE *f, const step *s)
{
	fputc(s->op, f);
	fwrite(s->l->p, 1, s->l->len, f);
	if (s->l->len == 0 || s->l->p[s->l->len - 1] != '\n')
		fputs("\n\\ No newline at end of file\n", f);
}

static void hunks(FILE *f, const step *s, size_t ns, size_t ctx)
{
	size_t i = 0, oa = 0, ob = 0; /* lines of a and b before step i */

	while (i < ns) {
		size_t first = i, end, last, ca, cb;
		while (first < ns && s[first].op == ' ')
			first++;
		if (first == ns)
			break;
		/* the hunk: from ctx lines before the first change to ctx after the last
		 * change that is no more than 2 * ctx context lines from the one before */
		last = first;
		for (size_t j = first + 1, run = 0; j < ns; j++) {
			if (s[j].op == ' ') {
				if (++run > 2 * ctx)
					break;
			} else {
				last = j;
				run = 0;
			}
		}
		size_t start = first > i + ctx ? first - ctx : i;
		end = last + 1 + ctx < ns ? last + 1 + ctx : ns;
		/* lines of a and b before start */
		for (; i < start; i++) {
			oa += s[i].op != '+';
			ob += s[i].op != '-';
		}
		ca = cb = 0;
		for (size_t j = start; j < end; j++) {
			ca += s[j].op != '+';
			cb += s[j].op != '-';
		}
		fputs("@@ ", f);
		range(f, '-', oa, ca);
		fputc(' ', f);
		range(f, '+', ob, cb);
		fputs(" @@\n", f);
		for (; i < end; i++) {
			put_step(f, &s[i]);
			oa += s[i].op != '+';
			ob += s[i].op != '-';
		}
	}
}

int bkr_textdiff_unified(FILE *out, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
			 unsigned context)
{
	dctx c = { .budget = DIFF_BUDGET };
	step *s = NULL;
	size_t ns = 0, i = 0, j = 0;
	int err;

	if ((err = split_lines(a, alen, &c.a, &c.na)) < 0 || (err = split_lines(b, blen, &c.b, &c.nb)) < 0)
		goto done;
	c.voff = (long)(c.na + c.nb) / 2 + 2;
	if (!(c.del = calloc(c.na + 1, 1)) || !(c.ins = calloc(c.nb + 1, 1)) ||
	    !(c.vf = calloc((size_t)(2 * c.voff + 1), sizeof(long))) ||
	    !(c.vb = calloc((size_t)(2 * c.voff + 1), sizeof(long))) ||
	    !(s = calloc(c.na + c.nb + 1, sizeof(*s)))) {
		err = bkr_error_oom();
		goto done;
	}
	compare(&c, 0, (long)c.na, 0, (long)c.nb);
	while (i < c.na || j < c.nb) {
		if (i < c.na && c.del[i])
			s[ns++] = (step){ '-', &c.a[i++] };
		else if (j < c.nb && c.ins[j])
			s[ns++] = (step){ '+', &c.b[j++] };
		else
			s[ns++] = (step){ ' ', &c.a[i++] }, j++;
	}
	hunks(out, s, ns, context);
	err = ferror(out) ? bkr_error_set(BKR_EIO, "cannot write the diff") : 0;
done:
	free(s);
	free(c.a);
	free(c.b);
	free(c.del);
	free(c.ins);
	free(c.vf);
	free(c.vb);
	return err;
}
