/** @file
 * libFuzzer target: an S3 ListObjectsV2 answer (bkr_s3_list_parse, the XML
 * reader of engine/store_s3_parse.c) and an error answer's <Code>.
 */
#include <string.h>

#include "bkr/error.h"
#include "fuzz.h"
#include "store_s3_parse.h"

static int on_key(void *ctx, const char *key, int64_t modified)
{
	size_t *n = ctx;
	*n += strlen(key) + (modified > 0);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = 0;
	bkr_s3_list_page pg = { .on_key = on_key, .ctx = &n };
	char code[64];
	(void)bkr_s3_list_parse((const char *)data, size, &pg);
	bkr_s3_error_code((const char *)data, size, code, sizeof(code));
	bkr_error_clear();
	return 0;
}
