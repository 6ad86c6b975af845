/** @file
 * Helpers of the recovery unit tests: recovering a file and looking into its
 * report.json, and checking what was written (the general ones are in
 * testutil.h).  Header-only (each test is one program); they assert, so
 * <cmocka.h> comes first.
 */
#ifndef TEST_RECOVER_UTIL_H
#define TEST_RECOVER_UTIL_H

#include <cjson/cJSON.h>

#include "bkr/recover.h"
#include "testutil.h"

/** The report's entry for @p path (borrowed from @p root). */
static inline cJSON *tu_report_file(cJSON *root, const char *path)
{
	cJSON *f;
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(root, "files")) {
		cJSON *p = cJSON_GetObjectItem(f, "path");
		if (cJSON_IsString(p) && strcmp(p->valuestring, path) == 0)
			return f;
	}
	return NULL;
}

static inline const char *tu_str(cJSON *o, const char *key)
{
	cJSON *v = cJSON_GetObjectItem(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/** Result of attempt @p i of a report entry ("recovered", "failed", ...). */
static inline const char *tu_attempt(cJSON *entry, int i, const char *key)
{
	cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(entry, "attempts"), i);
	return a ? tu_str(a, key) : NULL;
}

static inline int tu_nattempts(cJSON *entry)
{
	return cJSON_GetArraySize(cJSON_GetObjectItem(entry, "attempts"));
}

/**
 * bkr_recover_file of @p path with @p o, which must succeed: its report is
 * in *rep (bkr_recover_report_free it), and the report's JSON, parsed, is
 * returned (cJSON_Delete it).
 */
static inline cJSON *tu_recover(bkr_recover *rc, const char *path, const bkr_recover_options *o, bkr_recover_report **rep)
{
	cJSON *root;
	assert_int_equal(bkr_recover_file(rc, path, o, rep), 0);
	root = cJSON_Parse(bkr_recover_report_json(*rep));
	assert_non_null(root);
	return root;
}

/** @p rel below @p dir holds exactly the text @p want. */
static inline void tu_assert_file(const char *dir, const char *rel, const char *want)
{
	char *got = tu_read(dir, rel, NULL);
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

#endif
