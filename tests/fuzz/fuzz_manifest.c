/** @file
 * libFuzzer target: a manifest, as stored (checksum first) and sealed with a
 * valid checksum so the parser behind it is reached; a manifest that parses
 * is encoded again both ways.
 */
#include "bkr/error.h"
#include "bkr/manifest.h"
#include "fuzz.h"

static void one(const char *text, size_t len)
{
	bkr_manifest *m = NULL;
	if (bkr_manifest_parse(&m, text, len, "manifest") == 0) {
		char *json = NULL;
		size_t n;
		if (bkr_manifest_encode(m, &json, &n) == 0)
			free(json);
		free(bkr_manifest_to_json(m, true));
	}
	bkr_manifest_free(m);
	bkr_error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;
	char *sealed;
	one((const char *)data, size);
	if ((sealed = fuzz_sealed(data, size, &len))) {
		one(sealed, len);
		free(sealed);
	}
	return 0;
}
