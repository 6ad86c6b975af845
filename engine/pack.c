/** @file
 * Pack files (docs/format.md "Blobs" and "Pack files"): encoding and decoding
 * of single blobs, the append-only pack writer that publishes a finished pack
 * through the storage layer (an upload: bkr/store.h), and the readers of
 * footers and blobs.
 *
 * Readers trust nothing on disk: the trailer's sizes are overflow-checked
 * against the file size, the footer is checksummed, every entry must lie
 * inside the blob area, a blob header must agree with its entry, and every
 * blob is re-hashed after decoding.  On any failure the caller's output buffer
 * is zeroed, so no partial or wrong bytes ever leave this module.
 *
 * In an encrypted repository (a bkr_crypto given) every blob is sealed on its
 * own, straight into the pack's upload (bkr_pack_writer_seal_add: no copy of
 * the sealed bytes) and the footer as one piece;
 * readers open and check both, and ids are the repository's keyed ids
 * (docs/format.md "Sealed blobs in packs").
 */
#include "bkr/pack.h"
#include "bkr/compress.h"
#include "bkr/crypto.h"
#include "bkr/error.h"
#include "bkr/io.h"
#include "bkr/store.h"

#include "array.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/** Largest pack: offsets in index entries are u32. */
#define PACK_MAX_SIZE ((uint64_t)UINT32_MAX)

struct bkr_pack_writer {
	const bkr_crypto *c;     /**< an encrypted repository's keys, else NULL */
	bkr_store_upload *up;    /**< NULL once published or failed */
	bool failed;             /**< a write failed: the pack cannot be finished */
	bool finished;
	bkr_blob_type type;
	uint64_t size;           /**< bytes of blobs written */
	bkr_pack_entry *entries;
	size_t count, cap;
};

/* ---- blobs -------------------------------------------------------------- */

int bkr_blob_encode(int level, const void *data, size_t len,
		    uint8_t **payload, uint32_t *stored_len, uint8_t *flags)
{
	return bkr_blob_encode_codec(level > 0 ? BKR_CODEC_ZLIB : BKR_CODEC_NONE, level, data, len, payload,
				     stored_len, flags);
}

int bkr_blob_encode_codec(int codec, int level, const void *data, size_t len,
			  uint8_t **payload, uint32_t *stored_len, uint8_t *flags)
{
	int err = bkr_blob_compress(codec, level, data, len, payload, stored_len, flags);
	if (err < 0 || *payload)
		return err;
	if (!(*payload = malloc(len ? len : 1)))
		return bkr_error_oom();
	if (len)
		memcpy(*payload, data, len);
	return 0;
}

int bkr_blob_compress(int codec, int level, const void *data, size_t len,
		      uint8_t **payload, uint32_t *stored_len, uint8_t *flags)
{
	uint8_t *buf = NULL, *shrunk;
	bool zstd = codec == BKR_CODEC_ZSTD;
	size_t out_len = 0, cap;
	int err = 0;

	*payload = NULL;
	*stored_len = 0;
	*flags = 0;
	if (len > BKR_BLOB_MAX) {
		err = bkr_error_set(BKR_EINVAL, "blob of %zu bytes exceeds the %u-byte limit",
				    len, BKR_BLOB_MAX);
		goto done;
	}
	if (level < 0 || level > 9) {
		err = bkr_error_set(BKR_EINVAL, "compression level %d out of range 0..9", level);
		goto done;
	}
	if (codec != BKR_CODEC_NONE && level > 0 && len > 0 &&
	    (zstd ? !bkr_compress_looks_random(data, len) : !bkr_compress_probe_incompressible(data, len))) {
		cap = bkr_compress_bound(len);
		if (!(buf = malloc(cap))) {
			err = bkr_error_oom();
			goto done;
		}
		err = zstd ? bkr_compress_zstd(level, data, len, buf, cap, &out_len)
			   : bkr_compress(level, data, len, buf, cap, &out_len);
		if (err == 0) {
			if ((shrunk = realloc(buf, out_len ? out_len : 1)))
				buf = shrunk;
			*payload = buf;
			*stored_len = (uint32_t)out_len;
			*flags = zstd ? BKR_BLOB_FLAG_ZSTD : BKR_BLOB_FLAG_ZLIB;
			buf = NULL;
			goto done;
		}
		if (err != BKR_ERROR)
			goto done;
		/* Would not shrink: store raw. */
		err = 0;
		bkr_error_clear();
	}
	/* raw: the caller's bytes as they are (*payload stays NULL) */
	*stored_len = (uint32_t)len;
done:
	free(buf);
	return err;
}

/* @p id in hex into @p out, for a message: a read that succeeds formats none. */
static const char *id_hex(const bkr_id *id, char out[BKR_ID_HEX])
{
	bkr_id_to_hex(id, out);
	return out;
}

/* bkr_blob_decode; the plaintext's id is compared only when @p hash. */
static int blob_decode(const bkr_crypto *c, const bkr_id *id, uint8_t flags, const void *payload,
		       uint32_t stored_len, void *out, uint32_t raw_len, const char *what, bool hash)
{
	char hex[BKR_ID_HEX];
	bkr_id got;
	int err = 0;

	if (raw_len > BKR_BLOB_MAX || stored_len > BKR_BLOB_MAX) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: blob %s: length %u/%u exceeds the %u-byte limit",
				    what, id_hex(id, hex), stored_len, raw_len, BKR_BLOB_MAX);
		goto done;
	}
	if ((flags & ~(BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD)) ||
	    (flags & (BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD)) == (BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD)) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: blob %s: unsupported flags 0x%02x",
				    what, id_hex(id, hex), flags);
		goto done;
	}
	if (flags & (BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD)) {
		if ((err = (flags & BKR_BLOB_FLAG_ZSTD) ? bkr_decompress_zstd(payload, stored_len, out, raw_len)
							: bkr_decompress(payload, stored_len, out, raw_len)) < 0) {
			bkr_error_prefix("%s: blob %s", what, id_hex(id, hex));
			goto done;
		}
	} else {
		if (stored_len != raw_len) {
			err = bkr_error_set(BKR_ECORRUPT,
					    "%s: blob %s: raw blob with stored length %u != raw length %u",
					    what, id_hex(id, hex), stored_len, raw_len);
			goto done;
		}
		if (raw_len && out != payload)
			memmove(out, payload, raw_len);
	}
	if (hash) {
		bkr_crypto_blob_id(c, out, raw_len, &got);
		if (bkr_id_cmp(&got, id) != 0) {
			err = bkr_error_set(BKR_ECORRUPT, "%s: blob %s: content hash mismatch", what, id_hex(id, hex));
			goto done;
		}
	}
done:
	if (err < 0 && raw_len && raw_len <= BKR_BLOB_MAX)
		memset(out, 0, raw_len);
	return err;
}

int bkr_blob_decode(const bkr_crypto *c, const bkr_id *id, uint8_t flags, const void *payload,
		    uint32_t stored_len, void *out, uint32_t raw_len, const char *what)
{
	return blob_decode(c, id, flags, payload, stored_len, out, raw_len, what, true);
}

int bkr_blob_seal(const bkr_crypto *c, bkr_blob_type type, const bkr_id *id, const void *raw,
		  uint8_t **payload, uint32_t *stored_len, uint8_t *flags)
{
	uint8_t *sealed = NULL;
	uint32_t n = 0;
	int err;

	if (!c)
		return 0;
	if ((err = bkr_crypto_seal_blob(c, (uint8_t)type, id, *flags & (BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD),
					*payload ? *payload : raw, *stored_len,
					&sealed, &n)) < 0)
		return err;
	free(*payload);
	*payload = sealed;
	*stored_len = n;
	*flags |= BKR_BLOB_FLAG_ENCRYPTED;
	return 0;
}

/* The header of a blob; a sealed one shows neither its raw length nor its id. */
static void header_encode(uint8_t h[BKR_BLOB_HEADER_SIZE], const bkr_id *id, uint8_t flags,
			  uint8_t type, uint32_t stored_len, uint32_t raw_len)
{
	bool sealed = flags & BKR_BLOB_FLAG_ENCRYPTED;
	memset(h, 0, BKR_BLOB_HEADER_SIZE);
	h[0] = BKR_BLOB_VERSION;
	h[1] = sealed ? BKR_BLOB_FLAG_ENCRYPTED : flags;
	h[2] = type;
	bkr_put_u32(h + 4, stored_len);
	if (!sealed) {
		bkr_put_u32(h + 8, raw_len);
		memcpy(h + 12, id->b, 4);
	}
}

/* Whether an entry's flags and lengths are possible (a pack of an encrypted
 * repository holds sealed blobs only, a plain one none). */
static bool entry_ok(const bkr_crypto *c, uint8_t flags, uint32_t stored_len, uint32_t raw_len)
{
	if (raw_len > BKR_BLOB_MAX)
		return false;
	if (c)
		return (flags == BKR_BLOB_FLAG_ENCRYPTED || flags == (BKR_BLOB_FLAG_ENCRYPTED | BKR_BLOB_FLAG_ZLIB) ||
			flags == (BKR_BLOB_FLAG_ENCRYPTED | BKR_BLOB_FLAG_ZSTD)) &&
		       stored_len >= BKR_CRYPTO_OVERHEAD + BKR_SEALED_BLOB_MIN &&
		       stored_len <= BKR_SEALED_BLOB_STORED_MAX;
	if (flags == (BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD))
		return false;
	return !(flags & ~(BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD)) && stored_len <= BKR_BLOB_MAX &&
	       ((flags & (BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD)) || stored_len == raw_len);
}

/* ---- writer ------------------------------------------------------------- */

int bkr_pack_writer_new(bkr_pack_writer **out, bkr_store *s, const char *tmp_prefix, bkr_blob_type type,
			const bkr_crypto *c)
{
	bkr_pack_writer *w = NULL;
	int err = 0;

	*out = NULL;
	if (type != BKR_BLOB_DATA && type != BKR_BLOB_TREE) {
		err = bkr_error_set(BKR_EINVAL, "unknown blob type %d", (int)type);
		goto done;
	}
	if (!(w = calloc(1, sizeof(*w)))) {
		err = bkr_error_oom();
		goto done;
	}
	w->type = type;
	w->c = c;
	if ((err = bkr_store_upload_new(s, tmp_prefix, &w->up)) < 0)
		goto done;
	*out = w;
	w = NULL;
done:
	free(w);
	return err;
}

/** Give up on the upload after a failed write (nothing is left behind). */
static void writer_abort(bkr_pack_writer *w)
{
	bkr_store_upload_free(w->up);
	w->up = NULL;
	w->failed = true;
}

static int writer_usable(const bkr_pack_writer *w)
{
	if (w->finished)
		return bkr_error_set(BKR_EINVAL, "pack writer already finished");
	if (w->failed || !w->up)
		return bkr_error_set(BKR_EIO, "pack writer failed earlier; pack abandoned");
	return 0;
}

/* bkr_crypto_blob_sealer_fill as the upload's bkr_store_fill_fn */
static int seal_fill(void *sealer, uint8_t *buf, size_t n)
{
	return bkr_crypto_blob_sealer_fill(sealer, buf, n);
}

/* Append a blob: its header, then its stored bytes, @p payload's or, with
 * @p sealer, sealed by it straight into the upload. */
static int writer_append(bkr_pack_writer *w, const bkr_id *id, uint8_t flags, const void *payload,
			 bkr_blob_sealer *sealer, uint32_t stored_len, uint32_t raw_len)
{
	uint8_t h[BKR_BLOB_HEADER_SIZE];
	bkr_pack_entry *e;
	int err;

	if ((err = writer_usable(w)) < 0)
		return err;
	if (!entry_ok(w->c, flags, stored_len, raw_len))
		return bkr_error_set(BKR_EINVAL, "blob flags 0x%02x with lengths %u/%u do not fit a pack of %s repository",
				     flags, stored_len, raw_len, w->c ? "an encrypted" : "a plain");
	if (w->size + BKR_BLOB_HEADER_SIZE + stored_len > PACK_MAX_SIZE)
		return bkr_error_set(BKR_EINVAL, "pack would exceed %llu bytes",
				     (unsigned long long)PACK_MAX_SIZE);
	if ((err = bkr_array_grow((void **)&w->entries, &w->cap, w->count, sizeof(*w->entries))) < 0)
		return err;
	header_encode(h, id, flags, (uint8_t)w->type, stored_len, raw_len);
	if ((err = bkr_store_upload_write(w->up, h, sizeof(h))) < 0 ||
	    (err = sealer ? bkr_store_upload_fill(w->up, stored_len, seal_fill, sealer)
			  : bkr_store_upload_write(w->up, payload, stored_len)) < 0) {
		writer_abort(w);
		return err;
	}
	e = &w->entries[w->count++];
	memset(e, 0, sizeof(*e));
	e->id = *id;
	e->offset = w->size;
	e->stored_len = stored_len;
	e->raw_len = raw_len;
	e->type = (uint8_t)w->type;
	e->flags = flags;
	w->size += BKR_BLOB_HEADER_SIZE + (uint64_t)stored_len;
	return 0;
}

int bkr_pack_writer_add(bkr_pack_writer *w, const bkr_id *id, uint8_t flags, const void *payload, uint32_t stored_len,
			uint32_t raw_len)
{
	return writer_append(w, id, flags, payload, NULL, stored_len, raw_len);
}

int bkr_pack_writer_seal_add(bkr_pack_writer *w, const bkr_id *id, uint8_t flags, const void *payload, uint32_t len,
			     uint32_t raw_len, uint32_t *stored_len)
{
	bkr_blob_sealer *sealer = NULL;
	int err;

	*stored_len = 0;
	if (!w->c)
		return bkr_error_set(BKR_EINVAL, "sealing a blob into a pack of a plain repository");
	if ((err = writer_usable(w)) < 0 ||
	    (err = bkr_crypto_blob_sealer_new(&sealer, w->c, (uint8_t)w->type, id,
					      flags & (BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD), payload, len)) < 0)
		return err;
	err = writer_append(w, id, flags | BKR_BLOB_FLAG_ENCRYPTED, NULL, sealer,
			    (uint32_t)bkr_crypto_blob_sealer_len(sealer), raw_len);
	if (err == 0)
		*stored_len = (uint32_t)bkr_crypto_blob_sealer_len(sealer);
	bkr_crypto_blob_sealer_free(sealer);
	return err;
}

uint64_t bkr_pack_writer_size(const bkr_pack_writer *w)
{
	return w->size;
}

size_t bkr_pack_writer_count(const bkr_pack_writer *w)
{
	return w->count;
}

const bkr_pack_entry *bkr_pack_writer_entries(const bkr_pack_writer *w, size_t *n)
{
	*n = w->count;
	return w->entries;
}

#define FOOTER_AD_SIZE (BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE + BKR_PACK_ID_SIZE)
static void footer_ad(uint8_t ad[FOOTER_AD_SIZE], const bkr_crypto *c, const bkr_pack_id *pack)
{
	bkr_crypto_ad_prefix(ad, "bkrfs-footer-v1", bkr_crypto_repo_id(c));
	memcpy(ad + BKR_CRYPTO_LABEL_SIZE + BKR_CRYPTO_REPO_ID_SIZE, pack->b, BKR_PACK_ID_SIZE);
}

/* Bytes of the footer before the trailer: entries, sealed when encrypted. */
static size_t footer_size(const bkr_crypto *c, uint64_t count)
{
	return (size_t)count * BKR_PACK_ENTRY_SIZE + (c ? BKR_CRYPTO_OVERHEAD : 0);
}

/** The footer entries and trailer of the entries written so far (malloc'd). */
static int footer_encode(const bkr_pack_writer *w, const bkr_pack_id *pack, uint8_t **out, size_t *len)
{
	size_t fsize = footer_size(w->c, w->count), n = fsize + BKR_PACK_TRAILER_SIZE;
	uint8_t *buf, *p, *t, *plain = NULL, ad[FOOTER_AD_SIZE];
	bkr_id sum;
	int err;

	*out = NULL;
	if (!(buf = calloc(1, n)))
		return bkr_error_oom();
	if (w->c && !(plain = calloc(1, w->count * BKR_PACK_ENTRY_SIZE + 1))) {
		free(buf);
		return bkr_error_oom();
	}
	p = plain ? plain : buf;
	for (size_t i = 0; i < w->count; i++, p += BKR_PACK_ENTRY_SIZE) {
		const bkr_pack_entry *e = &w->entries[i];
		memcpy(p, e->id.b, BKR_ID_SIZE);
		bkr_put_u64(p + 32, e->offset);
		bkr_put_u32(p + 40, e->stored_len);
		bkr_put_u32(p + 44, e->raw_len);
		p[48] = e->type;
		p[49] = e->flags;
	}
	if (plain) {
		footer_ad(ad, w->c, pack);
		err = bkr_crypto_seal(w->c, ad, sizeof(ad), plain, w->count * BKR_PACK_ENTRY_SIZE, buf);
		free(plain);
		if (err < 0) {
			free(buf);
			return err;
		}
	}
	t = buf + fsize;
	memcpy(t, BKR_PACK_MAGIC, 8);
	bkr_put_u32(t + 8, BKR_PACK_VERSION);
	bkr_put_u32(t + 12, (uint32_t)w->count);
	bkr_put_u64(t + 16, w->size);
	bkr_put_u64(t + 24, w->c ? BKR_PACK_FOOTER_SEALED : 0);
	bkr_sha256(buf, (size_t)(t + 32 - buf), &sum);
	memcpy(t + 32, sum.b, BKR_ID_SIZE);
	*out = buf;
	*len = n;
	return 0;
}

int bkr_pack_writer_finish(bkr_pack_writer *w, const char *pack_root, bkr_pack_id *id_out)
{
	char name[PATH_MAX];
	uint8_t *footer = NULL;
	size_t footer_len = 0;
	bkr_pack_id id;
	int err;

	memset(id_out, 0, sizeof(*id_out));
	if ((err = writer_usable(w)) < 0)
		return err;
	if (w->count > UINT32_MAX) {
		err = bkr_error_set(BKR_EINVAL, "too many blobs for one pack");
		goto done;
	}
	if ((err = bkr_random_bytes(id.b, sizeof(id.b))) < 0)
		goto done;
	if ((err = bkr_pack_path(name, sizeof(name), pack_root, &id)) < 0)
		goto done;
	if ((err = footer_encode(w, &id, &footer, &footer_len)) < 0)
		goto done;
	if ((err = bkr_store_upload_write(w->up, footer, footer_len)) < 0)
		goto done;
	if ((err = bkr_store_upload_publish(w->up, name)) < 0) {
		bkr_error_prefix("publish pack %s", name);
		goto done;
	}
	bkr_store_upload_free(w->up);
	w->up = NULL;
	w->finished = true;
	*id_out = id;
done:
	if (err < 0)
		writer_abort(w);
	free(footer);
	return err;
}

void bkr_pack_writer_free(bkr_pack_writer *w)
{
	if (!w)
		return;
	bkr_store_upload_free(w->up);
	free(w->entries);
	free(w);
}

int bkr_pack_path(char *out, size_t cap, const char *pack_root, const bkr_pack_id *id)
{
	char hex[BKR_PACK_ID_HEX];
	int n;

	bkr_pack_id_to_hex(id, hex);
	n = snprintf(out, cap, "%s/%.2s/%s.pack", pack_root, hex, hex);
	if (n < 0 || (size_t)n >= cap)
		return bkr_error_set(BKR_EINVAL, "pack path too long under %s", pack_root);
	return 0;
}

int bkr_pack_folders_tidy(bkr_store *s)
{
	static const char *const roots[] = { "data", "tree" };
	char name[16];
	int err = 0;

	for (size_t r = 0; r < sizeof(roots) / sizeof(*roots) && err == 0; r++)
		for (unsigned x = 0; x < 256 && err == 0; x++) {
			snprintf(name, sizeof(name), "%s/%02x", roots[r], x);
			err = bkr_store_drop_folder(s, name);
		}
	return err;
}

/* ---- readers ------------------------------------------------------------ */

/* Footer entry @p i at @p p into @p e, checked (docs/format.md "Pack files"):
 * lengths, type, flags, and that its blob lies in [*prev_end, footer_off),
 * the end of the entry before it to the footer; *prev_end becomes its end. */
static int entry_decode(const bkr_crypto *c, const uint8_t *p, uint32_t i, uint64_t footer_off, uint64_t *prev_end,
			const char *what, bkr_pack_entry *e)
{
	char hex[BKR_ID_HEX];
	uint64_t end;

	memcpy(e->id.b, p, BKR_ID_SIZE);
	e->offset = bkr_get_u64(p + 32);
	e->stored_len = bkr_get_u32(p + 40);
	e->raw_len = bkr_get_u32(p + 44);
	e->type = p[48];
	e->flags = p[49];
	bkr_id_to_hex(&e->id, hex);
	if (e->stored_len > bkr_blob_stored_max(e->flags) || e->raw_len > BKR_BLOB_MAX)
		return bkr_error_set(BKR_ECORRUPT, "%s: entry %u (blob %s): length %u/%u exceeds the %u-byte limit",
				     what, i, hex, e->stored_len, e->raw_len, BKR_BLOB_MAX);
	if (e->type != BKR_BLOB_DATA && e->type != BKR_BLOB_TREE)
		return bkr_error_set(BKR_ECORRUPT, "%s: entry %u (blob %s): unknown type %u", what, i, hex, e->type);
	if (!entry_ok(c, e->flags, e->stored_len, e->raw_len))
		return bkr_error_set(BKR_ECORRUPT, "%s: entry %u (blob %s): bad flags 0x%02x or lengths %u/%u", what, i,
				     hex, e->flags, e->stored_len, e->raw_len);
	/* Entries are in file order and must not overlap or leave the blob area. */
	if (e->offset < *prev_end ||
	    __builtin_add_overflow(e->offset, (uint64_t)BKR_BLOB_HEADER_SIZE + e->stored_len, &end) || end > footer_off)
		return bkr_error_set(BKR_ECORRUPT,
				     "%s: entry %u (blob %s) at offset %llu + %u lies outside the blob area [%llu, %llu)",
				     what, i, hex, (unsigned long long)e->offset, e->stored_len,
				     (unsigned long long)*prev_end, (unsigned long long)footer_off);
	*prev_end = end;
	return 0;
}

/* The fewest bytes of the blob area one entry takes: its blob's header, and
 * in an encrypted repository the smallest sealed payload (entry_ok). */
static uint64_t entry_min_bytes(const bkr_crypto *c)
{
	return BKR_BLOB_HEADER_SIZE + (c ? BKR_CRYPTO_OVERHEAD + BKR_SEALED_BLOB_MIN : 0);
}

/* A plain footer larger than this is checked entry by entry in pieces of this
 * size before it is read whole (footer_prescan). */
#define FOOTER_PIECE ((size_t)BKR_PACK_ENTRY_SIZE * 16384)

/*
 * The entries of a large plain footer checked in pieces before the footer is
 * allocated and read whole: the trailer's count and offset are bounded by the
 * file's size alone, so a forged trailer at the end of a file with a hole (a
 * sparse file costs nothing on disk) would claim a footer of gigabytes of
 * zeros; its second entry already fails (zeros are not in file order), after
 * one piece.  What passes is entries a writer wrote out, each one of them.
 */
static int footer_prescan(bkr_pack_reader read, void *ctx, uint64_t footer_off, uint32_t count, const char *what)
{
	uint8_t *piece = NULL;
	uint64_t prev_end = 0;
	bkr_pack_entry e;
	int err = 0;

	if (!(piece = malloc(FOOTER_PIECE)))
		return bkr_error_oom();
	for (uint32_t i = 0; i < count && err == 0;) {
		uint32_t n = (uint32_t)(FOOTER_PIECE / BKR_PACK_ENTRY_SIZE);
		if (count - i < n)
			n = count - i;
		if ((err = read(ctx, piece, (size_t)n * BKR_PACK_ENTRY_SIZE,
				footer_off + (uint64_t)i * BKR_PACK_ENTRY_SIZE)) < 0)
			break;
		for (uint32_t k = 0; k < n && err == 0; k++, i++)
			err = entry_decode(NULL, piece + (size_t)k * BKR_PACK_ENTRY_SIZE, i, footer_off, &prev_end,
					   what, &e);
	}
	free(piece);
	return err;
}

int bkr_pack_read_footer_from(const bkr_crypto *c, const bkr_pack_id *pack, bkr_pack_reader read, void *ctx,
			      uint64_t file_size, const char *what, bkr_pack_entry **entries, size_t *n)
{
	uint8_t trailer[BKR_PACK_TRAILER_SIZE], *buf = NULL, *t, *ents_at, ad[FOOTER_AD_SIZE];
	uint64_t flags;
	bkr_pack_entry *ents = NULL;
	uint64_t footer_off, footer_len, end, prev_end = 0;
	uint32_t version, count;
	size_t buf_len;
	bkr_id sum;
	int err = 0;

	*entries = NULL;
	*n = 0;
	if (file_size < BKR_PACK_TRAILER_SIZE) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: too small for a pack (%llu bytes)",
				    what, (unsigned long long)file_size);
		goto done;
	}
	if ((err = read(ctx, trailer, sizeof(trailer), file_size - BKR_PACK_TRAILER_SIZE)) < 0)
		goto done;
	if (memcmp(trailer, BKR_PACK_MAGIC, 8) != 0) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: no pack trailer (magic) at its end: truncated, or not a pack", what);
		goto done;
	}
	if ((version = bkr_get_u32(trailer + 8)) != BKR_PACK_VERSION) {
		err = bkr_error_set(BKR_EUNSUPPORTED, "%s: unsupported pack version %u", what, version);
		goto done;
	}
	count = bkr_get_u32(trailer + 12);
	footer_off = bkr_get_u64(trailer + 16);
	footer_len = footer_size(c, count); /* < 2^38: no overflow */
	if (__builtin_add_overflow(footer_off, footer_len, &end) ||
	    __builtin_add_overflow(end, (uint64_t)BKR_PACK_TRAILER_SIZE, &end) || end != file_size) {
		err = bkr_error_set(BKR_ECORRUPT,
				    "%s: footer offset %llu + %u entries does not match file size %llu",
				    what, (unsigned long long)footer_off, count,
				    (unsigned long long)file_size);
		goto done;
	}
	/* Bounded before anything is allocated or read: the blob area by the
	 * writer's bound (index offsets are 32-bit), the count by the entries that
	 * fit it (each blob takes at least entry_min_bytes of it, without
	 * overlap); a large plain footer's entries are checked before it is read whole. */
	if (footer_off > PACK_MAX_SIZE || count > footer_off / entry_min_bytes(c)) {
		err = bkr_error_set(BKR_ECORRUPT,
				    "%s: %u entries in a blob area of %llu bytes: more than a pack holds (a blob area of "
				    "at most %llu bytes, each blob at least %llu bytes of it)",
				    what, count, (unsigned long long)footer_off, (unsigned long long)PACK_MAX_SIZE,
				    (unsigned long long)entry_min_bytes(c));
		goto done;
	}
	if (!c && footer_len > FOOTER_PIECE && (err = footer_prescan(read, ctx, footer_off, count, what)) < 0)
		goto done;
	buf_len = (size_t)footer_len + BKR_PACK_TRAILER_SIZE;
	if (!(buf = malloc(buf_len))) {
		err = bkr_error_oom();
		goto done;
	}
	if ((err = read(ctx, buf, buf_len, footer_off)) < 0)
		goto done;
	t = buf + footer_len;
	bkr_sha256(buf, buf_len - BKR_ID_SIZE, &sum);
	if (memcmp(sum.b, t + 32, BKR_ID_SIZE) != 0 || memcmp(t, trailer, 32) != 0) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: pack footer checksum mismatch", what);
		goto done;
	}
	flags = bkr_get_u64(trailer + 24);
	if (flags != (c ? BKR_PACK_FOOTER_SEALED : 0)) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: pack flags 0x%llx: %s", what, (unsigned long long)flags,
				    c ? "not a pack of an encrypted repository" : "a sealed pack in a plain repository");
		goto done;
	}
	ents_at = buf;
	if (c) {
		/* opened in place: the entries follow the nonce */
		footer_ad(ad, c, pack);
		ents_at = buf + BKR_CRYPTO_NONCE_SIZE;
		if ((err = bkr_crypto_open(c, ad, sizeof(ad), buf, (size_t)footer_len, ents_at, what)) < 0)
			goto done;
	}
	if (count && !(ents = calloc(count, sizeof(*ents)))) {
		err = bkr_error_oom();
		goto done;
	}
	for (uint32_t i = 0; i < count; i++)
		if ((err = entry_decode(c, ents_at + (size_t)i * BKR_PACK_ENTRY_SIZE, i, footer_off, &prev_end, what,
					&ents[i])) < 0)
			goto done;
	*entries = ents;
	*n = count;
	ents = NULL;
done:
	free(ents);
	free(buf);
	return err;
}

/* A sealed blob: its header (version 1, the encrypted flag, type, the
 * stored length, zeros), then open, check and decode the payload. */
static int read_sealed(const bkr_crypto *c, bkr_pack_reader read, void *ctx, const char *what, const bkr_id *id,
		       uint64_t offset, uint32_t stored_len, uint32_t raw_len, uint8_t type, void *out, unsigned opts)
{
	static const uint8_t zero[8];
	char hex[BKR_ID_HEX];
	uint8_t *buf = NULL, *h;
	const uint8_t *payload;
	size_t plen;
	uint8_t codec;
	int err;

	if (!(buf = malloc(BKR_BLOB_HEADER_SIZE + (size_t)stored_len)))
		return bkr_error_oom();
	if ((err = read(ctx, buf, BKR_BLOB_HEADER_SIZE + (size_t)stored_len, offset)) < 0) {
		bkr_error_prefix("blob %s", id_hex(id, hex));
		goto done;
	}
	h = buf;
	if (h[0] != BKR_BLOB_VERSION || h[1] != BKR_BLOB_FLAG_ENCRYPTED || h[2] != type || h[3] != 0 ||
	    bkr_get_u32(h + 4) != stored_len || memcmp(h + 8, zero, 8) != 0) {
		err = bkr_error_set(BKR_ECORRUPT,
				    "%s: blob %s at offset %llu: header (version %u, flags 0x%02x, type %u, "
				    "length %u) disagrees with the index (sealed, type %u, length %u)",
				    what, id_hex(id, hex), (unsigned long long)offset, h[0], h[1], h[2],
				    bkr_get_u32(h + 4), type, stored_len);
		goto done;
	}
	/* a raw payload is deciphered straight into @p out */
	if ((err = bkr_crypto_open_blob_to(c, type, id, buf + BKR_BLOB_HEADER_SIZE, stored_len, out, raw_len,
					   &payload, &plen, &codec, what)) < 0) {
		bkr_error_prefix("blob %s", id_hex(id, hex));
		goto done;
	}
	if (!codec && plen != raw_len) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: blob %s: raw payload of %zu bytes, the index says %u",
				    what, id_hex(id, hex), plen, raw_len);
		goto done;
	}
	err = blob_decode(c, id, codec, payload, (uint32_t)plen, out, raw_len, what, !(opts & BKR_PACK_UNHASHED));
done:
	free(buf);
	return err;
}

int bkr_pack_read_blob_from(const bkr_crypto *c, bkr_pack_reader read, void *ctx, const char *what,
			    const bkr_id *id, uint64_t offset, uint32_t stored_len, uint32_t raw_len,
			    uint8_t type, void *out, unsigned opts)
{
	char hex[BKR_ID_HEX];
	uint8_t *buf = NULL, *h, hdr[BKR_BLOB_HEADER_SIZE];
	const uint8_t *payload;
	uint64_t end;
	int err = 0;

	if (stored_len > (c ? BKR_SEALED_BLOB_STORED_MAX : BKR_BLOB_MAX) || raw_len > BKR_BLOB_MAX ||
	    __builtin_add_overflow(offset, (uint64_t)BKR_BLOB_HEADER_SIZE + stored_len, &end) ||
	    end > (uint64_t)INT64_MAX) {
		err = bkr_error_set(BKR_ECORRUPT, "%s: blob %s: bad location %llu + %u (raw %u)",
				    what, id_hex(id, hex), (unsigned long long)offset, stored_len, raw_len);
		goto done;
	}
	if (c) {
		err = read_sealed(c, read, ctx, what, id, offset, stored_len, raw_len, type, out, opts);
		goto done;
	}
	if (stored_len == raw_len) {
		/* A raw blob (the only kind whose lengths are equal): header into
		 * hdr, payload straight into @p out, verified in place. */
		h = hdr;
		if ((err = read(ctx, hdr, BKR_BLOB_HEADER_SIZE, offset)) < 0 ||
		    (err = read(ctx, out, stored_len, offset + BKR_BLOB_HEADER_SIZE)) < 0) {
			bkr_error_prefix("blob %s", id_hex(id, hex));
			goto done;
		}
		payload = out;
	} else {
		if (!(buf = malloc(BKR_BLOB_HEADER_SIZE + (size_t)stored_len))) {
			err = bkr_error_oom();
			goto done;
		}
		if ((err = read(ctx, buf, BKR_BLOB_HEADER_SIZE + (size_t)stored_len, offset)) < 0) {
			bkr_error_prefix("blob %s", id_hex(id, hex));
			goto done;
		}
		h = buf;
		payload = buf + BKR_BLOB_HEADER_SIZE;
	}
	if (h[0] != BKR_BLOB_VERSION || h[3] != 0 || (h[1] & ~(BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD)) ||
	    h[2] != type || bkr_get_u32(h + 4) != stored_len || bkr_get_u32(h + 8) != raw_len ||
	    memcmp(h + 12, id->b, 4) != 0) {
		err = bkr_error_set(BKR_ECORRUPT,
				    "%s: blob %s at offset %llu: header (version %u, flags 0x%02x, type %u, "
				    "lengths %u/%u) disagrees with the index (type %u, lengths %u/%u)",
				    what, id_hex(id, hex), (unsigned long long)offset, h[0], h[1], h[2],
				    bkr_get_u32(h + 4), bkr_get_u32(h + 8), type, stored_len, raw_len);
		goto done;
	}
	if (payload == out && (h[1] & (BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD))) {
		/* the writer keeps compression only when it shrinks the blob */
		err = bkr_error_set(BKR_ECORRUPT, "%s: blob %s: compressed but not smaller than its plaintext",
				    what, id_hex(id, hex));
		goto done;
	}
	err = blob_decode(NULL, id, h[1], payload, stored_len, out, raw_len, what, !(opts & BKR_PACK_UNHASHED));
done:
	if (err < 0 && raw_len && raw_len <= BKR_BLOB_MAX)
		memset(out, 0, raw_len);
	free(buf);
	return err;
}

struct fd_reader {
	int fd;
	const char *what;
};

static int fd_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	const struct fd_reader *r = ctx;
	return bkr_io_pread_full(r->fd, buf, len, off, r->what);
}

int bkr_pack_read_footer(const bkr_crypto *c, const bkr_pack_id *pack, int fd, uint64_t file_size,
			 const char *what, bkr_pack_entry **entries, size_t *n)
{
	struct fd_reader r = { fd, what };
	return bkr_pack_read_footer_from(c, pack, fd_read, &r, file_size, what, entries, n);
}

int bkr_pack_read_blob(const bkr_crypto *c, int fd, const char *what, const bkr_id *id, uint64_t offset,
		       uint32_t stored_len, uint32_t raw_len, uint8_t type, void *out)
{
	struct fd_reader r = { fd, what };
	return bkr_pack_read_blob_from(c, fd_read, &r, what, id, offset, stored_len, raw_len, type, out, 0);
}
