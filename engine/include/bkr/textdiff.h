/** @file
 * A line diff of two texts in the unified format of `diff -u` (the hunks:
 * "@@ -l,n +l,n @@", context, '-' and '+' lines, "\ No newline at end of
 * file"), for `bkr log -p`.  Myers' O(ND) algorithm in linear space
 * (E. W. Myers, "An O(ND) Difference Algorithm and Its Variations", 1986):
 * memory is a few words per line.
 */
#ifndef BKR_TEXTDIFF_H
#define BKR_TEXTDIFF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** true when @p len bytes at @p p look binary (hold a NUL byte). */
int bkr_textdiff_binary(const uint8_t *p, size_t len);

/**
 * Write the hunks turning text @p a into text @p b, with @p context lines
 * of context, to @p out (nothing when they are equal).  0 or BKR_ENOMEM /
 * BKR_EIO (a write failed).
 */
int bkr_textdiff_unified(FILE *out, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
			 unsigned context);

#endif
