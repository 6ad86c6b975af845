/** @file
 * The one JSON writer of bkr's --json output.  It streams to a FILE, puts the
 * commas and escapes itself, and writes any bytes as valid UTF-8 JSON: bytes
 * that are not UTF-8 become U+FFFD and a path or name also gets a `KEY_hex`
 * member with its exact bytes (the promise of bkr(1), "OUTPUT").
 *
 *     json_out j;
 *     json_out_init(&j, stdout);
 *     json_out_begin_object(&j);
 *     json_out_key(&j, "files"); json_out_uint(&j, 3);
 *     json_out_path(&j, "path", name, len);
 *     json_out_end_object(&j);      // ends with a newline at the top level
 */
#ifndef BKR_TOOLS_JSON_OUT_H
#define BKR_TOOLS_JSON_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "bkr/hold.h"

#define JSON_OUT_MAX_DEPTH 16

typedef struct {
	FILE *f;
	int depth;                      /**< open objects and arrays */
	bool items[JSON_OUT_MAX_DEPTH]; /**< this level has a member already */
	bool array[JSON_OUT_MAX_DEPTH]; /**< this level is an array */
	bool after_key;                 /**< a key was written; its value comes next */
} json_out;

void json_out_init(json_out *j, FILE *f);

void json_out_begin_object(json_out *j);
void json_out_end_object(json_out *j);
/** Arrays at the top level put each element on a line of its own. */
void json_out_begin_array(json_out *j);
void json_out_end_array(json_out *j);

/** An object member's key (plain ASCII, written as is); its value follows. */
void json_out_key(json_out *j, const char *key);

/** A string value from arbitrary bytes (NUL-terminated, or @p len bytes). */
void json_out_string(json_out *j, const char *s);
void json_out_bytes(json_out *j, const char *s, size_t len);
void json_out_uint(json_out *j, uint64_t v);
void json_out_int(json_out *j, int64_t v);
void json_out_bool(json_out *j, bool v);
void json_out_null(json_out *j);
/** Just the string literal for @p len bytes at @p s, on @p f. */
void json_out_literal(FILE *f, const char *s, size_t len);
/** A value that is JSON already (e.g. a manifest from the engine). */
void json_out_raw(json_out *j, const char *json);

/** Key and string value in one call; a NULL @p s writes null. */
void json_out_member(json_out *j, const char *key, const char *s);
/**
 * Member @p key for a path or name: the string, and when the bytes are not
 * UTF-8 also `KEY_hex` with their exact value in hexadecimal.
 */
void json_out_path(json_out *j, const char *key, const char *s, size_t len);

/**
 * A hold (bkr/hold.h) as one object, the same for `bkr hold --json` and
 * `bkr health --json`'s `held[]`: `path` (and `path_hex`), `damage`,
 * `backup_id`, `since` (ISO 8601 UTC; null when its record's time is no
 * time) and `host` (the host whose scan found it; null when not recorded).
 */
void json_out_hold(json_out *j, const bkr_hold *h);

#endif
