/** @file
 * Which backup a user's spec names (see bkr/backupid.h).
 */
#include "bkr/backupid.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bkr/error.h"

/** Candidates named in an "ambiguous" message; more are counted, not listed. */
#define LISTED_MAX 8

const char *bkr_backupid_suffix(const char *id)
{
	const char *us = strrchr(id, '_');
	return us ? us + 1 : id;
}

static bool matches(const char *id, const char *spec, size_t speclen)
{
	return !strncmp(id, spec, speclen) || !strncmp(bkr_backupid_suffix(id), spec, speclen);
}

int bkr_backupid_resolve(size_t *index, const char *const *ids, size_t n, const char *spec, const char *what,
			 const char *where)
{
	size_t speclen = strlen(spec), count = 0, hit = 0;
	char list[600];
	size_t used = 0;

	*index = 0;
	if (!strcmp(spec, "latest")) {
		for (size_t i = n; i-- > 0;) {
			if (ids[i]) {
				*index = i;
				return 0;
			}
		}
		return bkr_error_set(BKR_ENOTFOUND, "no %s in %s, so no 'latest'", what, where);
	}
	for (size_t i = 0; i < n; i++) {
		if (ids[i] && !strcmp(ids[i], spec)) {
			*index = i;
			return 0;
		}
	}
	list[0] = '\0';
	for (size_t i = 0; speclen && i < n; i++) {
		if (!ids[i] || !matches(ids[i], spec, speclen))
			continue;
		if (count < LISTED_MAX && used < sizeof(list)) {
			int w = snprintf(list + used, sizeof(list) - used, "%s%s", count ? ", " : "", ids[i]);
			used += w > 0 ? (size_t)w : 0;
		}
		hit = i;
		count++;
	}
	if (count == 1) {
		*index = hit;
		return 0;
	}
	if (count == 0)
		return bkr_error_set(BKR_ENOTFOUND, "%s '%s': no such %s in %s", what, spec, what, where);
	return bkr_error_set(BKR_EAMBIGUOUS, "'%s' matches %zu %ss: %s%s; give more characters", spec, count, what,
			     list, count > LISTED_MAX ? ", ..." : "");
}
