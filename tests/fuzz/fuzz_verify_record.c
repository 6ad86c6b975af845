/** @file
 * libFuzzer target: the decoder of verify records (bkr_verify_record_decode),
 * on each input as it is and sealed (so the parser behind the checksum is
 * reached); a decoded record is encoded again and must decode to the same.
 */
#include <stdlib.h>
#include <string.h>

#include "bkr/error.h"
#include "bkr/verify_record.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void one(const char *text, size_t len)
{
	bkr_verify_record *rec = NULL, *again = NULL;
	char *json = NULL, *sealed = NULL;
	size_t slen;

	if (bkr_verify_record_decode(&rec, text, len, "fuzz") == 0) {
		size_t n = rec->ndamaged < BKR_VERIFY_RECORD_MAX_DAMAGED ? rec->ndamaged : BKR_VERIFY_RECORD_MAX_DAMAGED;
		if (bkr_verify_record_encode(rec, &json) < 0 || bkr_json_seal(json, &sealed, &slen) < 0 ||
		    bkr_verify_record_decode(&again, sealed, slen, "again") < 0 || again->ndamaged != n ||
		    again->result != rec->result || again->stats.errors != rec->stats.errors ||
		    (n && memcmp(again->damaged, rec->damaged, n * sizeof(*rec->damaged))))
			abort(); /* what decodes must encode and decode to the same */
	}
	bkr_verify_record_free(rec);
	bkr_verify_record_free(again);
	free(json);
	free(sealed);
	bkr_error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *sealed;
	size_t len;
	one((const char *)data, size);
	if ((sealed = fuzz_sealed(data, size, &len))) {
		one(sealed, len);
		free(sealed);
	}
	return 0;
}
