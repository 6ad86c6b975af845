/** @file
 * The pure parts of the S3 store (engine/store_s3.c), apart so that unit
 * tests and a fuzz target reach them without a server: the "s3://BUCKET[/PREFIX]"
 * URL, the endpoint (and whether it takes path-style requests), the
 * percent-encoding S3 signs, and the XML S3 answers with — a ListObjectsV2
 * page and an error's <Code>.  No I/O, no allocation beyond what they return.
 */
#ifndef BKR_STORE_S3_PARSE_H
#define BKR_STORE_S3_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** "s3://BUCKET[/PREFIX]": bucket and prefix (no leading or trailing '/'; "" when none). */
typedef struct {
	char bucket[64];
	char prefix[512];
} bkr_s3_url;

/**
 * Parse @p url; BKR_EINVAL naming what is wrong (a bucket name S3 refuses, an
 * empty, "." or ".." component of the prefix).
 */
int bkr_s3_url_parse(bkr_s3_url *out, const char *url);

/** An endpoint "http[s]://HOST[:PORT][/]" split (HOST keeps an IPv6 literal's brackets). */
typedef struct {
	bool https;
	char host[256];
	unsigned port; /**< 0: the scheme's default */
} bkr_s3_endpoint;

/** Parse @p url (BKR_EINVAL naming it: no scheme, a path, a bad port). */
int bkr_s3_endpoint_parse(bkr_s3_endpoint *out, const char *url);

/** Path-style addressing is needed: an IP address or "localhost" cannot take BUCKET. before it. */
bool bkr_s3_endpoint_path_style(const bkr_s3_endpoint *e);

/**
 * Append @p s percent-encoded as SigV4 wants (everything but A-Z a-z 0-9 - _ . ~,
 * and '/' too unless @p keep_slash) to @p out (capacity @p cap, NUL-terminated).
 * BKR_EINVAL when it does not fit.
 */
int bkr_s3_encode(char *out, size_t cap, const char *s, bool keep_slash);

/** One page of a ListObjectsV2 answer. */
typedef struct {
	/** Called for each <Contents>: its <Key> (entities decoded) and <LastModified> (UTC seconds, 0 when absent). */
	int (*on_key)(void *ctx, const char *key, int64_t modified);
	/** Instead of on_key when set: also its <ETag> as given (quotes and all; "" when absent or
	 *  longer than 95 bytes) and <Size> (0 when absent or not a number). */
	int (*on_object)(void *ctx, const char *key, int64_t modified, const char *etag, uint64_t size);
	void *ctx;
	bool truncated;       /**< <IsTruncated>true</IsTruncated> */
	char token[1024];     /**< <NextContinuationToken>, decoded ("" when none) */
} bkr_s3_list_page;

/**
 * Parse a ListObjectsV2 answer of @p len bytes (not NUL-terminated) into
 * @p page; BKR_ECORRUPT on malformed XML, or what @p page->on_key returned
 * when it was <0.
 */
int bkr_s3_list_parse(const char *xml, size_t len, bkr_s3_list_page *page);

/** The <Code> of an S3 error answer into @p out ("" when there is none). */
void bkr_s3_error_code(const char *xml, size_t len, char *out, size_t cap);

/** Seconds since the epoch of "2026-11-30T06:47:00.000Z" (or an HTTP date); -1 when it is neither. */
int64_t bkr_s3_parse_time(const char *s);

#endif
