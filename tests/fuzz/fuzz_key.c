/** @file
 * libFuzzer target: a key file (engine/key.c).  Each input is parsed as it
 * is and sealed with a valid checksum (so the field checks behind it are
 * reached); a key file that parses with cheap scrypt parameters is opened
 * with a fixed passphrase (a wrong passphrase, or the seed's right one).
 */
#include "bkr/crypto.h"
#include "bkr/error.h"
#include "bkr/key.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	return 0;
}

static void one(const char *text, size_t len)
{
	bkr_key_file kf;
	bkr_crypto *c = NULL;

	if (bkr_key_parse(&kf, text, len, "fuzz") < 0)
		return;
	/* scrypt costs N·r·p: only cheap parameters are worth deriving here */
	if (kf.kdf.n <= 1024 && kf.kdf.r * kf.kdf.p <= 8 && bkr_key_open(&kf, "fuzz", 4, &c) == 0)
		bkr_crypto_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len = 0;
	char *sealed;

	one((const char *)data, size);
	if ((sealed = fuzz_sealed(data, size, &len))) {
		one(sealed, len);
		free(sealed);
	}
	bkr_error_clear();
	return 0;
}
