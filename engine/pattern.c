/** @file
 * Matching paths against exclude and protect patterns (pattern.h).
 */
#include "bkr/pattern.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

/* @p path (length @p len, not necessarily NUL-terminated in the caller) with
 * its last component at @p base. */
static bool match_one(const char *pat, const char *path, const char *base)
{
	if (fnmatch(pat, path, 0) == 0)
		return true;
	return base != path && !strchr(pat, '/') && fnmatch(pat, base, 0) == 0;
}

bool bkr_pattern_match(const char *const *patterns, size_t n, const char *rel)
{
	const char *base;

	if (!rel || !n)
		return false;
	base = strrchr(rel, '/');
	base = base ? base + 1 : rel;
	for (size_t i = 0; i < n; i++)
		if (patterns[i] && match_one(patterns[i], rel, base))
			return true;
	return false;
}

bool bkr_pattern_match_under(const char *const *patterns, size_t n, const char *rel)
{
	size_t len;
	char *buf;
	bool hit = false;

	if (!rel || !n)
		return false;
	while (*rel == '/')
		rel++;
	len = strlen(rel);
	if (!(buf = malloc(len + 1)))
		return false;
	/* the path and each of its parents: "a", "a/b", "a/b/c" */
	for (size_t end = 1; end <= len && !hit; end++) {
		if (end < len && rel[end] != '/')
			continue;
		memcpy(buf, rel, end);
		buf[end] = '\0';
		hit = bkr_pattern_match(patterns, n, buf);
	}
	free(buf);
	return hit;
}
