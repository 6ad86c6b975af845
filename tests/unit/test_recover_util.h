/** @file
 * Helpers of the recovery unit tests: looking into a report.json (the
 * general ones are in testutil.h).  Header-only (each test is one program).
 */
#ifndef TEST_RECOVER_UTIL_H
#define TEST_RECOVER_UTIL_H

#include <cjson/cJSON.h>

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

#endif
