/** @file
 * Magic constants and limits of the repository format v1 (docs/format.md).
 */
#ifndef BKR_FORMAT_H
#define BKR_FORMAT_H

#include <stdint.h>

#define BKR_FORMAT_NAME "bkrfs-repository"
#define BKR_FORMAT_VERSION 1

#define BKR_BLOB_HEADER_SIZE 16
#define BKR_BLOB_VERSION 1
#define BKR_BLOB_FLAG_ZLIB 0x01u
#define BKR_BLOB_FLAG_ENCRYPTED 0x02u /* sealed (an encrypted repository: docs/format.md "Encryption") */
#define BKR_BLOB_FLAG_ZSTD 0x04u      /* a zstd frame (a repository with the feature "zstd") */
#define BKR_BLOB_MAX (16u << 20)       /* raw or stored length of one blob */
/* stored length of a sealed blob: its padding (at most 1/32 at this size) and nonce and tag */
#define BKR_SEALED_BLOB_STORED_MAX (BKR_BLOB_MAX + (BKR_BLOB_MAX >> 5) + 28u)

#define BKR_PACK_MAGIC "BKRPACK\0"
#define BKR_PACK_VERSION 1
#define BKR_PACK_ENTRY_SIZE 56
#define BKR_PACK_TRAILER_SIZE 64
#define BKR_PACK_TARGET_SIZE (32u << 20)
#define BKR_PACK_FOOTER_SEALED 1u /* trailer flags (offset 24): the footer entries are sealed */

#define BKR_INDEX_MAGIC "BKRIDX\0\0"
#define BKR_INDEX_VERSION 1
#define BKR_INDEX_HEADER_SIZE 32
#define BKR_INDEX_ENTRY_SIZE 64
#define BKR_INDEX_ENTRIES_MAX (1u << 24)    /* entries of one index file the writer writes (1 GiB of them) */
#define BKR_INDEX_SUPERSEDED_MAX (1u << 20) /* superseded ids of one index file the writer writes */
/* The largest index file a reader reads: 4 × the largest the writer writes
 * (about 4.1 GiB); a larger one is damaged, refused before it is read. */
#define BKR_INDEX_FILE_MAX \
	(4 * ((uint64_t)BKR_INDEX_HEADER_SIZE + (uint64_t)BKR_INDEX_SUPERSEDED_MAX * 32 + \
	      (uint64_t)BKR_INDEX_ENTRIES_MAX * BKR_INDEX_ENTRY_SIZE + 32))

#define BKR_TREE_MAGIC "BKRTREE\0"
#define BKR_TREE_VERSION 1
#define BKR_TREE_HEADER_SIZE 16
#define BKR_TREE_PAGE_MAX 4096 /* entries per leaf page */
#define BKR_TREE_HOLES_SPARSE 0x80000000u /* hole count bit: the content is the sparse digest */
#define BKR_XATTR_INLINE_MAX 4096

#define BKR_CHUNK_MIN (256u << 10)
#define BKR_CHUNK_AVG (1u << 20)
#define BKR_CHUNK_MAX (4u << 20)

/** Blob types (a u8 on disk). */
typedef enum { BKR_BLOB_DATA = 0, BKR_BLOB_TREE = 1 } bkr_blob_type;

/** The largest stored length a blob with these flags may have. */
static inline uint32_t bkr_blob_stored_max(uint8_t flags)
{
	return (flags & BKR_BLOB_FLAG_ENCRYPTED) ? BKR_SEALED_BLOB_STORED_MAX : BKR_BLOB_MAX;
}

static inline void bkr_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void bkr_put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void bkr_put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline uint16_t bkr_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t bkr_get_u32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static inline uint64_t bkr_get_u64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

#endif
