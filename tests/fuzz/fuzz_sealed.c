/** @file
 * libFuzzer target: the sealed forms of an encrypted repository
 * (engine/crypto.c, engine/pack.c): a sealed object (magic, nonce,
 * ciphertext, tag), a sealed blob, and an encrypted pack (its trailer and
 * sealed footer, and a sealed blob read through the pack reader), all
 * opened under fixed keys.  Each input is also sealed under those keys
 * and, after the change its first byte names, opened again, so that the
 * code after a successful authentication is reached too.
 */
#include "bkr/crypto.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/pack.h"
#include "fuzz.h"

static bkr_crypto *keys;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint8_t enc[32], mac[32], repo[16];
	(void)argc;
	(void)argv;
	memset(enc, 1, sizeof(enc));
	memset(mac, 2, sizeof(mac));
	memset(repo, 3, sizeof(repo));
	if (bkr_crypto_new(&keys, enc, mac, repo) < 0)
		abort();
	return 0;
}

static void open_object(const uint8_t *data, size_t size)
{
	uint8_t *out = NULL;
	size_t len = 0;
	if (bkr_crypto_open_object(keys, "backups/x.json", data, size, &out, &len, "fuzz") == 0)
		free(out);
}

static void open_blob(const uint8_t *data, size_t size, const bkr_id *id)
{
	uint8_t *copy = malloc(size ? size : 1);
	const uint8_t *payload;
	size_t len;
	uint8_t codec;
	if (!copy)
		return;
	memcpy(copy, data, size);
	(void)bkr_crypto_open_blob(keys, BKR_BLOB_DATA, id, copy, size, &payload, &len, &codec, "fuzz");
	free(copy);
}

static void open_pack(const uint8_t *data, size_t size)
{
	bkr_pack_entry *ents = NULL;
	bkr_pack_id pack;
	uint8_t *out;
	size_t n = 0;
	int fd;

	memset(&pack, 4, sizeof(pack));
	if ((fd = fuzz_memfd(data, size)) < 0)
		return;
	if (bkr_pack_read_footer(keys, &pack, fd, size, "fuzz", &ents, &n) == 0) {
		for (size_t i = 0; i < n && i < 4; i++) {
			if (!(out = malloc(ents[i].raw_len ? ents[i].raw_len : 1)))
				break;
			(void)bkr_pack_read_blob(keys, fd, "fuzz", &ents[i].id, ents[i].offset, ents[i].stored_len,
						 ents[i].raw_len, ents[i].type, out);
			free(out);
		}
		free(ents);
	}
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *sealed = NULL;
	uint32_t slen = 0;
	size_t olen = 0;
	bkr_id id;

	memset(&id, 5, sizeof(id));
	open_object(data, size);
	open_blob(data, size, &id);
	open_pack(data, size);
	/* sealed under the keys, changed (or not: first byte even), opened */
	if (bkr_crypto_seal_object(keys, "backups/x.json", data, size, &sealed, &olen) == 0) {
		if (size && (data[0] & 1))
			sealed[(size_t)data[0] % olen] ^= 0x10;
		open_object(sealed, olen);
		free(sealed);
	}
	if (size <= BKR_BLOB_MAX &&
	    bkr_crypto_seal_blob(keys, BKR_BLOB_DATA, &id,
				 size && (data[0] & 2) ? ((data[0] & 4) ? BKR_BLOB_FLAG_ZSTD : BKR_BLOB_FLAG_ZLIB) : 0,
				 data, size, &sealed, &slen) == 0) {
		if (size && (data[0] & 1))
			sealed[(size_t)data[0] % slen] ^= 0x10;
		open_blob(sealed, slen, &id);
		free(sealed);
	}
	bkr_error_clear();
	return 0;
}
