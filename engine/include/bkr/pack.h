/** @file
 * Pack files: many blobs in one file with a checksummed, self-describing
 * footer (docs/format.md "Pack files").  Writing is append-only into an
 * upload of the storage layer (bkr/store.h), published by
 * bkr_pack_writer_finish().  Reading validates
 * every length and offset before use and re-hashes every blob.
 */
#ifndef BKR_PACK_H
#define BKR_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "bkr/crypto.h"
#include "bkr/format.h"
#include "bkr/hash.h"
#include "bkr/index.h"
#include "bkr/store.h"

/** One footer entry. */
typedef struct {
	bkr_id id;
	uint64_t offset;     /**< of the blob header within the pack */
	uint32_t stored_len; /**< payload bytes after the 16-byte header */
	uint32_t raw_len;    /**< plaintext bytes */
	uint8_t type;        /**< bkr_blob_type */
	uint8_t flags;       /**< BKR_BLOB_FLAG_* */
} bkr_pack_entry;

/** The index entry of footer entry @p pe of pack @p pack. */
static inline bkr_index_entry bkr_pack_entry_index(const bkr_pack_entry *pe, const bkr_pack_id *pack)
{
	bkr_index_entry e = { .id = pe->id, .pack = *pack, .offset = (uint32_t)pe->offset,
			      .stored_len = pe->stored_len, .raw_len = pe->raw_len,
			      .type = pe->type, .flags = pe->flags };
	return e;
}

/**
 * Encode a plaintext blob for storage: compress with zlib at @p level (0 =
 * never) unless the probe says it will not shrink.  *payload is malloc'd
 * (caller frees); *flags gets BKR_BLOB_FLAG_ZLIB when compressed.
 */
int bkr_blob_encode(int level, const void *data, size_t len,
		    uint8_t **payload, uint32_t *stored_len, uint8_t *flags);

/**
 * The same with the codec @p codec (a bkr_codec): BKR_CODEC_ZSTD compresses
 * into a zstd frame and sets BKR_BLOB_FLAG_ZSTD; BKR_CODEC_NONE stores raw.
 */
int bkr_blob_encode_codec(int codec, int level, const void *data, size_t len,
			  uint8_t **payload, uint32_t *stored_len, uint8_t *flags);

/**
 * The same without copying a raw blob: when the blob is stored raw, *payload
 * is NULL (and *flags 0) and the payload is @p data itself, *stored_len bytes.
 */
int bkr_blob_compress(int codec, int level, const void *data, size_t len,
		      uint8_t **payload, uint32_t *stored_len, uint8_t *flags);

/**
 * Decode a (compressed or raw, not sealed) payload into @p out (capacity
 * raw_len) and check that the plaintext's id — keyed by @p c, SHA-256 when
 * NULL — is @p id: BKR_ECORRUPT on any mismatch, message naming @p what.
 */
int bkr_blob_decode(const bkr_crypto *c, const bkr_id *id, uint8_t flags, const void *payload,
		    uint32_t stored_len, void *out, uint32_t raw_len, const char *what);

/**
 * In an encrypted repository (@p c not NULL) seal an encoded payload in
 * place: *payload (or @p raw when *payload is NULL: bkr_blob_compress's raw
 * blob) is sealed, *payload replaced (freed, malloc'd), *stored_len becomes
 * the sealed length and *flags gains BKR_BLOB_FLAG_ENCRYPTED.  Nothing when
 * @p c is NULL.
 */
int bkr_blob_seal(const bkr_crypto *c, bkr_blob_type type, const bkr_id *id, const void *raw,
		  uint8_t **payload, uint32_t *stored_len, uint8_t *flags);

typedef struct bkr_pack_writer bkr_pack_writer;

/**
 * Start a pack in store @p s, its unfinished upload kept under the folder
 * @p tmp_prefix ("data").  All blobs must be of @p type.  With @p c (an
 * encrypted repository) every blob added must be sealed
 * (bkr_pack_writer_seal_add, or bkr_blob_seal before bkr_pack_writer_add) and
 * the footer is sealed.
 */
int bkr_pack_writer_new(bkr_pack_writer **out, bkr_store *s, const char *tmp_prefix, bkr_blob_type type,
			const bkr_crypto *c);

/** Append one encoded (and, encrypted, sealed) blob (header written here). Not thread-safe: callers serialise. */
int bkr_pack_writer_add(bkr_pack_writer *w, const bkr_id *id, uint8_t flags,
			const void *payload, uint32_t stored_len, uint32_t raw_len);

/**
 * Seal and append one encoded blob of an encrypted repository's pack: the
 * payload (@p len bytes; @p flags its codec, as bkr_blob_compress gave it) is
 * sealed straight into the pack's upload (bkr_store_upload_fill: into a local
 * store's staging window, never into a buffer of its own), *stored_len gets
 * the sealed length.  BKR_EINVAL for a plain repository's pack.  Not
 * thread-safe: callers serialise.
 */
int bkr_pack_writer_seal_add(bkr_pack_writer *w, const bkr_id *id, uint8_t flags, const void *payload, uint32_t len,
			     uint32_t raw_len, uint32_t *stored_len);

/** Bytes written so far (blobs + headers). */
uint64_t bkr_pack_writer_size(const bkr_pack_writer *w);
size_t bkr_pack_writer_count(const bkr_pack_writer *w);

/**
 * Write footer and trailer and publish the pack as "<pack_root>/<xx>/<hex>.pack"
 * in the writer's store (never replacing; durable on return); *id_out gets the
 * new random pack id.  After finish, the
 * entries stay readable through bkr_pack_writer_entries() until free.
 */
int bkr_pack_writer_finish(bkr_pack_writer *w, const char *pack_root, bkr_pack_id *id_out);

/** Entries appended so far (borrowed; valid until the next add or free). */
const bkr_pack_entry *bkr_pack_writer_entries(const bkr_pack_writer *w, size_t *n);

/** Free; an unfinished pack's upload is dropped.  NULL is a no-op. */
void bkr_pack_writer_free(bkr_pack_writer *w);

/** "<pack_root>/<xx>/<hex>.pack": a path, or an object name when @p pack_root is "data" or "tree". */
int bkr_pack_path(char *out, size_t cap, const char *pack_root, const bkr_pack_id *id);

/**
 * Remove the pack folders of @p s ("data/<xx>", "tree/<xx>") that hold
 * nothing (bkr_store_drop_folder: a publish that failed, packs moved to the
 * trash).  For a command holding the exclusive lock (prune, repair): no
 * writer is between making a folder and publishing into it.
 */
int bkr_pack_folders_tidy(bkr_store *s);

/**
 * Read and validate the footer of an open pack @p pack of @p file_size
 * bytes (sealed under @p c in an encrypted repository; @p pack may be NULL
 * when @p c is).  *entries is malloc'd.  BKR_ECORRUPT names @p what and what
 * is wrong.
 */
int bkr_pack_read_footer(const bkr_crypto *c, const bkr_pack_id *pack, int fd, uint64_t file_size,
			 const char *what, bkr_pack_entry **entries, size_t *n);

/**
 * Read one blob at @p offset (header + payload), check the header agrees with
 * the expected lengths/type/id prefix, open it (@p c: an encrypted
 * repository), decode into @p out (capacity raw_len) and verify its id.
 * Thread-safe (pread).
 */
int bkr_pack_read_blob(const bkr_crypto *c, int fd, const char *what, const bkr_id *id, uint64_t offset,
		       uint32_t stored_len, uint32_t raw_len, uint8_t type, void *out);

/** Reads exactly @p len bytes at @p off of the pack (BKR_ECORRUPT when it ends first). */
typedef int (*bkr_pack_reader)(void *ctx, void *buf, size_t len, uint64_t off);

/** bkr_pack_read_footer through @p read (a ranged get of the storage layer). */
int bkr_pack_read_footer_from(const bkr_crypto *c, const bkr_pack_id *pack, bkr_pack_reader read, void *ctx,
			      uint64_t file_size, const char *what, bkr_pack_entry **entries, size_t *n);

/**
 * @p opts of bkr_pack_read_blob_from: the plaintext's id (its hash) is not
 * compared with the blob's; everything else is checked (location, header,
 * lengths, codec, GCM tag).  Only for a caller that checks the bytes
 * another way before it uses any of them (bkr_walk_file_defer_checks).
 */
#define BKR_PACK_UNHASHED 1u

/** bkr_pack_read_blob through @p read (a ranged get of the storage layer); @p opts: BKR_PACK_* or 0. */
int bkr_pack_read_blob_from(const bkr_crypto *c, bkr_pack_reader read, void *ctx, const char *what,
			    const bkr_id *id, uint64_t offset, uint32_t stored_len, uint32_t raw_len,
			    uint8_t type, void *out, unsigned opts);

#endif
