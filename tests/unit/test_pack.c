/** @file
 * Unit tests of packs (engine/pack.c): blob encode/decode, writing and reading
 * back a pack of compressed and raw blobs, and hostile fixtures — truncated
 * files, bit flips in payloads and footers, wrong magic and version, trailer
 * sizes that overflow, entries outside the blob area, oversized lengths, blob
 * headers that disagree with their entries — plus fault injection through
 * BKR_FAULT and crash-safety of the writer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bkr/compress.h"
#include "bkr/crypto.h"
#include "bkr/error.h"
#include "bkr/format.h"
#include "bkr/hash.h"
#include "bkr/io.h"
#include "bkr/pack.h"
#include "bkr/store.h"

#define NBLOBS 6

struct blob {
	uint8_t *data;
	size_t len;
	bkr_id id;
};

struct fixture {
	char dir[512];       /**< private temp dir */
	bkr_store *s;        /**< a local store on dir */
	char tmp[PATH_MAX];  /**< dir/tmp: writer temporaries */
	char root[PATH_MAX]; /**< dir/data: pack root */
	char pack[PATH_MAX]; /**< the written pack */
	char bad[PATH_MAX];  /**< dir/bad.pack: hostile copies */
	struct blob blobs[NBLOBS];
	bkr_pack_entry *entries; /**< as read from the footer */
	size_t n;
	uint8_t *bytes;      /**< the pack file */
	size_t size;
};

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void make_blob(struct blob *b, size_t len, int kind, uint64_t seed)
{
	uint64_t s = seed;
	b->len = len;
	b->data = malloc(len ? len : 1);
	assert_non_null(b->data);
	for (size_t i = 0; i < len; i++) {
		if (kind == 0) /* random: stored raw */
			b->data[i] = (uint8_t)(rng_next(&s) >> 56);
		else /* text: compressed */
			b->data[i] = (uint8_t)("abc defg {\"k\":1}\n"[(i * 7 + (i >> 9)) % 17]);
	}
	bkr_sha256(b->data, len, &b->id);
}

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static size_t count_files(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

/** Every regular file below @p dir, recursively. */
static size_t count_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char p[PATH_MAX];
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) == 0)
			n += S_ISDIR(st.st_mode) ? count_tree(p) : 1;
	}
	closedir(d);
	return n;
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	uint8_t *buf = NULL;
	assert_int_equal(bkr_io_read_file(path, 1u << 30, &buf, len), 0);
	return buf;
}

/** Write all fixture blobs into a new pack with @p codec; its path in f->pack. */
static void write_pack_codec(struct fixture *f, int codec, int level)
{
	bkr_pack_writer *w = NULL;
	bkr_pack_id pid;
	const bkr_pack_entry *we;
	size_t wn, compressed = 0;

	assert_int_equal(bkr_pack_writer_new(&w, f->s, "tmp", BKR_BLOB_DATA, NULL), 0);
	for (int i = 0; i < NBLOBS; i++) {
		uint8_t *payload = NULL, flags = 0xff;
		uint32_t stored = 0;
		assert_int_equal(bkr_blob_encode_codec(codec, level, f->blobs[i].data, f->blobs[i].len,
						       &payload, &stored, &flags), 0);
		compressed += (flags & (BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD)) != 0;
		assert_int_equal(flags & (codec == BKR_CODEC_ZSTD ? BKR_BLOB_FLAG_ZLIB : BKR_BLOB_FLAG_ZSTD), 0);
		assert_int_equal(bkr_pack_writer_add(w, &f->blobs[i].id, flags, payload, stored,
						     (uint32_t)f->blobs[i].len), 0);
		free(payload);
	}
	if (level > 0)
		assert_true(compressed > 0 && compressed < NBLOBS); /* a real mix */
	assert_int_equal(bkr_pack_writer_count(w), NBLOBS);
	assert_int_equal(count_files(f->tmp, ".tmp-"), 1);
	assert_int_equal(bkr_pack_writer_finish(w, "data", &pid), 0);
	assert_int_equal(count_files(f->tmp, ".tmp-"), 0);
	assert_int_equal(bkr_pack_path(f->pack, sizeof(f->pack), f->root, &pid), 0);
	we = bkr_pack_writer_entries(w, &wn);
	assert_int_equal(wn, NBLOBS);
	for (size_t i = 0; i < wn; i++)
		assert_int_equal(bkr_id_cmp(&we[i].id, &f->blobs[i].id), 0);
	/* A finished writer refuses more work. */
	assert_int_not_equal(bkr_pack_writer_add(w, &f->blobs[0].id, 0, "x", 1, 1), 0);
	bkr_pack_writer_free(w);
}

static void write_pack(struct fixture *f, int level)
{
	write_pack_codec(f, level ? BKR_CODEC_ZLIB : BKR_CODEC_NONE, level);
}

static int setup_level(void **state, int level)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const size_t lens[NBLOBS] = { 300000, 200000, 0, 1, 65536 + 17, 1u << 20 };
	const int kinds[NBLOBS] = { 1, 0, 1, 0, 1, 0 };

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "%s/bkr-test-pack-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->tmp, sizeof(f->tmp), "%s/tmp", f->dir);
	snprintf(f->root, sizeof(f->root), "%s/data", f->dir);
	snprintf(f->bad, sizeof(f->bad), "%s/bad.pack", f->dir);
	if (mkdir(f->tmp, 0755) < 0 || bkr_store_local_open(&f->s, f->dir, 0) < 0)
		return -1;
	for (int i = 0; i < NBLOBS; i++)
		make_blob(&f->blobs[i], lens[i], kinds[i], 100 + (uint64_t)i);
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	write_pack(f, level);
	f->bytes = read_all(f->pack, &f->size);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_level(state, 1);
}

/** No compression: nothing of the codec's per-thread state exists yet. */
static int setup_raw(void **state)
{
	return setup_level(state, 0);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	bkr_store_free(f->s);
	for (int i = 0; i < NBLOBS; i++)
		free(f->blobs[i].data);
	free(f->entries);
	free(f->bytes);
	free(f);
	return 0;
}

/** Open @p path and read its footer; returns the code; entries into f. */
static int open_footer(struct fixture *f, const char *path, int *fd_out)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	int err;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	free(f->entries);
	f->entries = (bkr_pack_entry *)0x1;
	f->n = 99;
	err = bkr_pack_read_footer(NULL, NULL, fd, (uint64_t)st.st_size, path, &f->entries, &f->n);
	if (err < 0) {
		assert_null(f->entries);
		assert_int_equal(f->n, 0);
	}
	if (fd_out)
		*fd_out = fd;
	else
		close(fd);
	return err;
}

/** Write @p bytes as the hostile pack and expect the footer read to fail with @p code. */
static void expect_footer_error(struct fixture *f, const uint8_t *bytes, size_t len, int code)
{
	write_file(f->bad, bytes, len);
	assert_int_equal(open_footer(f, f->bad, NULL), code);
	assert_non_null(strstr(bkr_error_message(), f->bad));
}

/** Recompute the trailer checksum of a modified copy (so only the change is tested). */
static void reseal(uint8_t *bytes, size_t len)
{
	uint8_t *t = bytes + len - BKR_PACK_TRAILER_SIZE;
	uint64_t footer_off = bkr_get_u64(t + 16);
	bkr_id sum;
	bkr_sha256(bytes + footer_off, (size_t)(t + 32 - (bytes + footer_off)), &sum);
	memcpy(t + 32, sum.b, BKR_ID_SIZE);
}

static uint8_t *copy_bytes(struct fixture *f)
{
	uint8_t *c = malloc(f->size);
	assert_non_null(c);
	memcpy(c, f->bytes, f->size);
	return c;
}

static uint64_t footer_offset(struct fixture *f)
{
	return bkr_get_u64(f->bytes + f->size - BKR_PACK_TRAILER_SIZE + 16);
}

/* ---- tests --------------------------------------------------------------- */

static void test_blob_encode_decode(void **state)
{
	struct fixture *f = *state;
	uint8_t *payload = NULL, flags = 0, *out = malloc(f->blobs[0].len);
	uint32_t stored = 0;
	bkr_id wrong;
	char hex[BKR_ID_HEX];

	assert_non_null(out);
	/* Compressible text is compressed. */
	assert_int_equal(bkr_blob_encode(1, f->blobs[0].data, f->blobs[0].len, &payload, &stored, &flags), 0);
	assert_int_equal(flags, BKR_BLOB_FLAG_ZLIB);
	assert_true(stored < f->blobs[0].len);
	assert_int_equal(bkr_blob_decode(NULL, &f->blobs[0].id, flags, payload, stored, out,
					 (uint32_t)f->blobs[0].len, "mem"), 0);
	assert_memory_equal(out, f->blobs[0].data, f->blobs[0].len);
	/* A wrong id is corrupt, names the id, and leaves no plaintext behind. */
	wrong = f->blobs[0].id;
	wrong.b[31] ^= 1;
	bkr_id_to_hex(&wrong, hex);
	assert_int_equal(bkr_blob_decode(NULL, &wrong, flags, payload, stored, out,
					 (uint32_t)f->blobs[0].len, "mem"), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), hex));
	for (size_t i = 0; i < f->blobs[0].len; i++)
		assert_int_equal(out[i], 0);
	/* Wrong raw length. */
	assert_int_equal(bkr_blob_decode(NULL, &f->blobs[0].id, flags, payload, stored, out,
					 (uint32_t)f->blobs[0].len - 1, "mem"), BKR_ECORRUPT);
	/* Reserved flag. */
	assert_int_equal(bkr_blob_decode(NULL, &f->blobs[0].id, flags | BKR_BLOB_FLAG_ENCRYPTED, payload,
					 stored, out, (uint32_t)f->blobs[0].len, "mem"), BKR_ECORRUPT);
	free(payload);

	/* Random data is stored raw; level 0 stores raw. */
	assert_int_equal(bkr_blob_encode(6, f->blobs[1].data, f->blobs[1].len, &payload, &stored, &flags), 0);
	assert_int_equal(flags, 0);
	assert_int_equal(stored, f->blobs[1].len);
	assert_memory_equal(payload, f->blobs[1].data, stored);
	free(payload);
	assert_int_equal(bkr_blob_encode(0, f->blobs[0].data, f->blobs[0].len, &payload, &stored, &flags), 0);
	assert_int_equal(flags, 0);
	assert_int_equal(stored, f->blobs[0].len);
	/* Raw blob whose lengths disagree. */
	assert_int_equal(bkr_blob_decode(NULL, &f->blobs[0].id, 0, payload, stored - 1, out, stored, "mem"),
			 BKR_ECORRUPT);
	free(payload);
	/* Too large. */
	assert_int_equal(bkr_blob_encode(1, f->blobs[0].data, (size_t)BKR_BLOB_MAX + 1, &payload,
					 &stored, &flags), BKR_EINVAL);
	assert_null(payload);
	free(out);
}

static void test_write_read_all(void **state)
{
	struct fixture *f = *state;
	int fd;
	struct stat st;

	assert_int_equal(stat(f->pack, &st), 0);
	assert_int_equal(open_footer(f, f->pack, &fd), 0);
	assert_int_equal(f->n, NBLOBS);
	assert_int_equal(footer_offset(f) + NBLOBS * BKR_PACK_ENTRY_SIZE + BKR_PACK_TRAILER_SIZE,
			 (uint64_t)st.st_size);
	for (size_t i = 0; i < f->n; i++) {
		const bkr_pack_entry *e = &f->entries[i];
		struct blob *b = &f->blobs[i];
		uint8_t *out = malloc(b->len + 1);
		assert_non_null(out);
		assert_int_equal(bkr_id_cmp(&e->id, &b->id), 0);
		assert_int_equal(e->raw_len, b->len);
		assert_int_equal(e->type, BKR_BLOB_DATA);
		if (!(e->flags & BKR_BLOB_FLAG_ZLIB))
			assert_int_equal(e->stored_len, e->raw_len);
		assert_int_equal(bkr_pack_read_blob(NULL, fd, f->pack, &e->id, e->offset, e->stored_len,
						    e->raw_len, e->type, out), 0);
		assert_memory_equal(out, b->data, b->len);
		/* Asking for the wrong type is refused. */
		assert_int_equal(bkr_pack_read_blob(NULL, fd, f->pack, &e->id, e->offset, e->stored_len,
						    e->raw_len, BKR_BLOB_TREE, out), BKR_ECORRUPT);
		free(out);
	}
	close(fd);
	/* Uncompressed pack too. */
	write_pack(f, 0);
	assert_int_equal(open_footer(f, f->pack, NULL), 0);
	for (size_t i = 0; i < f->n; i++)
		assert_int_equal(f->entries[i].flags, 0);
	/* The pack root holds exactly the two packs. */
	assert_int_equal(count_tree(f->root), 2);
}

/* A pack of zstd blobs (and raw ones) reads back; a blob flagged with both
 * codecs, or with the wrong one, is corrupt. */
static void test_write_read_zstd(void **state)
{
	struct fixture *f = *state;
	uint8_t *payload = NULL, flags = 0;
	uint32_t stored = 0;
	bkr_pack_writer *w = NULL;
	int fd;

	write_pack_codec(f, BKR_CODEC_ZSTD, 2);
	assert_int_equal(open_footer(f, f->pack, &fd), 0);
	assert_int_equal(f->n, NBLOBS);
	for (size_t i = 0; i < f->n; i++) {
		const bkr_pack_entry *e = &f->entries[i];
		uint8_t *out = malloc(f->blobs[i].len + 1);
		assert_non_null(out);
		assert_true(e->flags == 0 || e->flags == BKR_BLOB_FLAG_ZSTD);
		assert_int_equal(bkr_pack_read_blob(NULL, fd, f->pack, &e->id, e->offset, e->stored_len,
						    e->raw_len, e->type, out), 0);
		assert_memory_equal(out, f->blobs[i].data, f->blobs[i].len);
		free(out);
	}
	close(fd);

	uint8_t *out = malloc(f->blobs[0].len);
	assert_non_null(out);
	assert_int_equal(bkr_blob_encode_codec(BKR_CODEC_ZSTD, 2, f->blobs[0].data, f->blobs[0].len, &payload,
					       &stored, &flags), 0);
	assert_int_equal(flags, BKR_BLOB_FLAG_ZSTD);
	assert_int_equal(bkr_blob_decode(NULL, &f->blobs[0].id, flags, payload, stored, out,
					 (uint32_t)f->blobs[0].len, "mem"), 0);
	assert_int_equal(bkr_blob_decode(NULL, &f->blobs[0].id, BKR_BLOB_FLAG_ZLIB, payload, stored, out,
					 (uint32_t)f->blobs[0].len, "mem"), BKR_ECORRUPT);
	assert_int_equal(bkr_blob_decode(NULL, &f->blobs[0].id, BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD, payload,
					 stored, out, (uint32_t)f->blobs[0].len, "mem"), BKR_ECORRUPT);
	assert_int_equal(bkr_pack_writer_new(&w, f->s, "tmp", BKR_BLOB_DATA, NULL), 0);
	assert_int_equal(bkr_pack_writer_add(w, &f->blobs[0].id, BKR_BLOB_FLAG_ZLIB | BKR_BLOB_FLAG_ZSTD, payload,
					     stored, (uint32_t)f->blobs[0].len), BKR_EINVAL);
	bkr_pack_writer_free(w);
	free(payload);
	free(out);
}

/* A pack of sealed blobs (an encrypted repository) with each codec: the
 * codec bit travels inside the seal, the entries carry 0x02 | that bit, every
 * blob reads back, and a flipped bit in a sealed zstd blob is refused. */
static void test_write_read_sealed(void **state)
{
	static const int codecs[] = { BKR_CODEC_ZLIB, BKR_CODEC_ZSTD };
	struct fixture *f = *state;
	uint8_t enc[BKR_CRYPTO_KEY_SIZE], mac[BKR_CRYPTO_KEY_SIZE], rid[BKR_CRYPTO_REPO_ID_SIZE];
	bkr_crypto *c = NULL;

	memset(enc, 0x11, sizeof(enc));
	memset(mac, 0x22, sizeof(mac));
	memset(rid, 0x33, sizeof(rid));
	assert_int_equal(bkr_crypto_new(&c, enc, mac, rid), 0);
	for (size_t k = 0; k < sizeof(codecs) / sizeof(*codecs); k++) {
		uint8_t codec_flag = codecs[k] == BKR_CODEC_ZSTD ? BKR_BLOB_FLAG_ZSTD : BKR_BLOB_FLAG_ZLIB;
		bkr_pack_writer *w = NULL;
		bkr_pack_entry *ents = NULL;
		bkr_id ids[NBLOBS];
		bkr_pack_id pid;
		struct stat st;
		size_t n = 0, compressed = 0;
		int fd;

		assert_int_equal(bkr_pack_writer_new(&w, f->s, "tmp", BKR_BLOB_DATA, c), 0);
		for (int i = 0; i < NBLOBS; i++) {
			uint8_t *payload = NULL, flags = 0;
			uint32_t stored = 0;
			bkr_crypto_blob_id(c, f->blobs[i].data, f->blobs[i].len, &ids[i]);
			assert_int_equal(bkr_blob_encode_codec(codecs[k], 2, f->blobs[i].data, f->blobs[i].len,
							       &payload, &stored, &flags), 0);
			assert_int_equal(bkr_blob_seal(c, BKR_BLOB_DATA, &ids[i], NULL, &payload, &stored, &flags), 0);
			assert_true(flags == BKR_BLOB_FLAG_ENCRYPTED || flags == (BKR_BLOB_FLAG_ENCRYPTED | codec_flag));
			compressed += (flags & codec_flag) != 0;
			assert_int_equal(bkr_pack_writer_add(w, &ids[i], flags, payload, stored,
							     (uint32_t)f->blobs[i].len), 0);
			free(payload);
		}
		assert_true(compressed > 0 && compressed < NBLOBS);
		assert_int_equal(bkr_pack_writer_finish(w, "data", &pid), 0);
		bkr_pack_writer_free(w);
		assert_int_equal(bkr_pack_path(f->pack, sizeof(f->pack), f->root, &pid), 0);
		fd = open(f->pack, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(fstat(fd, &st), 0);
		assert_int_equal(bkr_pack_read_footer(c, &pid, fd, (uint64_t)st.st_size, f->pack, &ents, &n), 0);
		assert_int_equal(n, NBLOBS);
		for (size_t i = 0; i < n; i++) {
			uint8_t *out = malloc(f->blobs[i].len + 1);
			assert_non_null(out);
			assert_true(ents[i].flags == BKR_BLOB_FLAG_ENCRYPTED ||
				    ents[i].flags == (BKR_BLOB_FLAG_ENCRYPTED | codec_flag));
			assert_int_equal(bkr_pack_read_blob(c, fd, f->pack, &ents[i].id, ents[i].offset, ents[i].stored_len,
							    ents[i].raw_len, ents[i].type, out), 0);
			assert_memory_equal(out, f->blobs[i].data, f->blobs[i].len);
			free(out);
		}
		/* tamper: one flipped bit inside the first compressed blob */
		for (size_t i = 0; i < n; i++) {
			uint8_t b, *out;
			off_t at = (off_t)(ents[i].offset + BKR_BLOB_HEADER_SIZE + ents[i].stored_len / 2);
			if (!(ents[i].flags & codec_flag))
				continue;
			assert_int_equal(pread(fd, &b, 1, at), 1);
			b ^= 0x10;
			assert_int_equal(pwrite(fd, &b, 1, at), 1);
			out = malloc(ents[i].raw_len + 1);
			assert_non_null(out);
			assert_int_equal(bkr_pack_read_blob(c, fd, f->pack, &ents[i].id, ents[i].offset, ents[i].stored_len,
							    ents[i].raw_len, ents[i].type, out), BKR_ECORRUPT);
			assert_non_null(strstr(bkr_error_message(), "authentication failed"));
			free(out);
			break;
		}
		/* and inside the first raw one (deciphered straight into out):
		 * refused, and nothing of it is left in out */
		for (size_t i = 0; i < n; i++) {
			uint8_t b, *out;
			off_t at = (off_t)(ents[i].offset + BKR_BLOB_HEADER_SIZE + ents[i].stored_len / 2);
			if (ents[i].flags & codec_flag)
				continue;
			assert_int_equal(pread(fd, &b, 1, at), 1);
			b ^= 0x01;
			assert_int_equal(pwrite(fd, &b, 1, at), 1);
			out = malloc(ents[i].raw_len);
			assert_non_null(out);
			memset(out, 0x55, ents[i].raw_len);
			assert_int_equal(bkr_pack_read_blob(c, fd, f->pack, &ents[i].id, ents[i].offset, ents[i].stored_len,
							    ents[i].raw_len, ents[i].type, out), BKR_ECORRUPT);
			assert_non_null(strstr(bkr_error_message(), "authentication failed"));
			for (size_t j = 0; j < ents[i].raw_len; j++)
				assert_int_equal(out[j], 0);
			free(out);
			break;
		}
		close(fd);
		free(ents);
	}
	bkr_crypto_free(c);
}

/*
 * bkr_pack_writer_seal_add, how the writer stores an encrypted repository's
 * blobs: each sealed straight into the pack's upload (the local store's
 * staging windows of 2 MiB), small blobs that straddle a window's edge and
 * blobs of several windows (5 and 9 MiB, raw) among compressed ones; every
 * blob reads back and the stored lengths are the sealed ones.  A plain
 * pack refuses it.
 */
static void test_write_read_seal_add(void **state)
{
	struct fixture *f = *state;
	uint8_t enc[BKR_CRYPTO_KEY_SIZE], mac[BKR_CRYPTO_KEY_SIZE], rid[BKR_CRYPTO_REPO_ID_SIZE];
	static const size_t lens[] = { 5u << 20, 3000, 700000, 1, 9u << 20, 65536, 123457 };
	enum { N = 3 * (sizeof(lens) / sizeof(*lens)) };
	uint8_t *data[N];
	bkr_id ids[N];
	bkr_crypto *c = NULL;
	bkr_pack_writer *w = NULL;
	bkr_pack_entry *ents = NULL;
	bkr_pack_id pid;
	struct stat st;
	uint32_t stored;
	size_t n = 0;
	int fd;

	memset(enc, 0x11, sizeof(enc));
	memset(mac, 0x22, sizeof(mac));
	memset(rid, 0x33, sizeof(rid));
	assert_int_equal(bkr_crypto_new(&c, enc, mac, rid), 0);
	assert_int_equal(bkr_pack_writer_new(&w, f->s, "tmp", BKR_BLOB_DATA, c), 0);
	for (size_t i = 0; i < N; i++) {
		size_t len = lens[i % (sizeof(lens) / sizeof(*lens))];
		uint8_t *payload = NULL, flags = 0;
		uint32_t plen = 0;
		assert_non_null(data[i] = malloc(len));
		for (size_t k = 0; k < len; k++) /* every third blob compressible */
			data[i][k] = i % 3 ? (uint8_t)((k * 2654435761u + i) >> 11) : (uint8_t)(k % 7);
		bkr_crypto_blob_id(c, data[i], len, &ids[i]);
		assert_int_equal(bkr_blob_encode_codec(BKR_CODEC_ZSTD, 2, data[i], len, &payload, &plen, &flags), 0);
		assert_int_equal(bkr_pack_writer_seal_add(w, &ids[i], flags, payload ? payload : data[i], plen,
							  (uint32_t)len, &stored),
				 0);
		assert_int_equal(stored, bkr_crypto_blob_sealed_len(plen));
		free(payload);
	}
	assert_int_equal(bkr_pack_writer_finish(w, "data", &pid), 0);
	bkr_pack_writer_free(w);
	assert_int_equal(bkr_pack_path(f->pack, sizeof(f->pack), f->root, &pid), 0);
	fd = open(f->pack, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(bkr_pack_read_footer(c, &pid, fd, (uint64_t)st.st_size, f->pack, &ents, &n), 0);
	assert_int_equal(n, N);
	for (size_t i = 0; i < n; i++) {
		uint8_t *out = malloc(ents[i].raw_len + 1);
		assert_non_null(out);
		assert_memory_equal(&ents[i].id, &ids[i], sizeof(ids[i]));
		assert_int_equal(ents[i].raw_len, lens[i % (sizeof(lens) / sizeof(*lens))]);
		assert_int_equal(bkr_pack_read_blob(c, fd, f->pack, &ents[i].id, ents[i].offset, ents[i].stored_len,
						    ents[i].raw_len, ents[i].type, out),
				 0);
		assert_memory_equal(out, data[i], ents[i].raw_len);
		free(out);
		free(data[i]);
	}
	close(fd);
	free(ents);

	/* not into a plain repository's pack */
	assert_int_equal(bkr_pack_writer_new(&w, f->s, "tmp", BKR_BLOB_DATA, NULL), 0);
	assert_int_equal(bkr_pack_writer_seal_add(w, &ids[0], 0, "x", 1, 1, &stored), BKR_EINVAL);
	assert_int_equal(bkr_pack_writer_count(w), 0);
	bkr_pack_writer_free(w);
	bkr_crypto_free(c);
}

static void test_truncated(void **state)
{
	struct fixture *f = *state;
	size_t lens[] = { 0, 1, 10, 63, 64, 100, f->size / 2, (size_t)footer_offset(f),
			  f->size - 64, f->size - 56, f->size - 1 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		expect_footer_error(f, f->bytes, lens[i], BKR_ECORRUPT);
	/* Appended bytes break the trailer position too. */
	uint8_t *c = malloc(f->size + 3);
	assert_non_null(c);
	memcpy(c, f->bytes, f->size);
	memset(c + f->size, 0, 3);
	expect_footer_error(f, c, f->size + 3, BKR_ECORRUPT);
	free(c);
}

static void test_truncated_blob_read(void **state)
{
	struct fixture *f = *state;
	const bkr_pack_entry *e;
	uint8_t *out;
	int fd;

	assert_int_equal(open_footer(f, f->pack, NULL), 0);
	e = &f->entries[NBLOBS - 1];
	/* Cut the file in the middle of the last blob. */
	write_file(f->bad, f->bytes, (size_t)e->offset + 100);
	fd = open(f->bad, O_RDONLY);
	assert_true(fd >= 0);
	out = malloc(e->raw_len);
	assert_non_null(out);
	assert_int_equal(bkr_pack_read_blob(NULL, fd, f->bad, &e->id, e->offset, e->stored_len,
					    e->raw_len, e->type, out), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "truncated"));
	free(out);
	close(fd);
}

static void test_payload_bit_flip(void **state)
{
	struct fixture *f = *state;
	char hex[BKR_ID_HEX];
	int fd;

	assert_int_equal(open_footer(f, f->pack, NULL), 0);
	/* Flip one bit in a compressed and in a raw blob's payload. */
	for (int victim = 0; victim < 2; victim++) {
		uint8_t *c = copy_bytes(f);
		const bkr_pack_entry *v = &f->entries[victim];
		assert_int_equal(!!(v->flags & BKR_BLOB_FLAG_ZLIB), victim == 0);
		c[v->offset + BKR_BLOB_HEADER_SIZE + v->stored_len / 2] ^= 0x04;
		write_file(f->bad, c, f->size);
		free(c);
		bkr_pack_entry *ents = f->entries;
		f->entries = NULL;
		/* The footer is intact. */
		assert_int_equal(open_footer(f, f->bad, &fd), 0);
		free(ents);
		for (size_t i = 0; i < f->n; i++) {
			const bkr_pack_entry *e = &f->entries[i];
			uint8_t *out = malloc(e->raw_len + 1);
			int r;
			assert_non_null(out);
			r = bkr_pack_read_blob(NULL, fd, f->bad, &e->id, e->offset, e->stored_len,
					       e->raw_len, e->type, out);
			if ((int)i == victim) {
				assert_int_equal(r, BKR_ECORRUPT);
				bkr_id_to_hex(&e->id, hex);
				assert_non_null(strstr(bkr_error_message(), hex));
				assert_non_null(strstr(bkr_error_message(), f->bad));
				for (size_t k = 0; k < e->raw_len; k++)
					assert_int_equal(out[k], 0);
			} else {
				assert_int_equal(r, 0);
				assert_memory_equal(out, f->blobs[i].data, e->raw_len);
			}
			free(out);
		}
		close(fd);
	}
}

static void test_footer_bit_flip(void **state)
{
	struct fixture *f = *state;
	uint64_t fo = footer_offset(f);
	size_t where[] = { (size_t)fo, (size_t)fo + 40, (size_t)fo + 56 + 49, (size_t)fo + 56 * 3 + 53,
			   f->size - 64 + 24, f->size - 32, f->size - 1 };
	for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		uint8_t *c = copy_bytes(f);
		c[where[i]] ^= 0x01;
		expect_footer_error(f, c, f->size, BKR_ECORRUPT);
		assert_non_null(strstr(bkr_error_message(), "checksum"));
		free(c);
	}
}

static void test_magic_version(void **state)
{
	struct fixture *f = *state;
	uint8_t *c = copy_bytes(f);
	uint8_t *t = c + f->size - BKR_PACK_TRAILER_SIZE;

	t[0] = 'X';
	reseal(c, f->size);
	expect_footer_error(f, c, f->size, BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "magic"));
	t[0] = 'B';
	bkr_put_u32(t + 8, 2);
	reseal(c, f->size);
	expect_footer_error(f, c, f->size, BKR_EUNSUPPORTED);
	assert_non_null(strstr(bkr_error_message(), "version"));
	bkr_put_u32(t + 8, 0);
	reseal(c, f->size);
	expect_footer_error(f, c, f->size, BKR_EUNSUPPORTED);
	free(c);
}

static void test_count_offset_overflow(void **state)
{
	struct fixture *f = *state;
	uint8_t *c = copy_bytes(f);
	uint8_t *t = c + f->size - BKR_PACK_TRAILER_SIZE;
	uint32_t count;

	/* Huge count with an offset that wraps the sum around to the file size. */
	count = UINT32_MAX;
	bkr_put_u32(t + 12, count);
	bkr_put_u64(t + 16, (uint64_t)f->size - 64 - (uint64_t)count * BKR_PACK_ENTRY_SIZE);
	expect_footer_error(f, c, f->size, BKR_ECORRUPT);
	/* Offset near 2^64. */
	bkr_put_u32(t + 12, NBLOBS);
	bkr_put_u64(t + 16, UINT64_MAX - 100);
	expect_footer_error(f, c, f->size, BKR_ECORRUPT);
	/* Count one too many / too few. */
	bkr_put_u64(t + 16, footer_offset(f));
	bkr_put_u32(t + 12, NBLOBS + 1);
	expect_footer_error(f, c, f->size, BKR_ECORRUPT);
	bkr_put_u32(t + 12, NBLOBS - 1);
	expect_footer_error(f, c, f->size, BKR_ECORRUPT);
	free(c);
}

/** Modify entry @p i of a copy, reseal, expect ECORRUPT. */
static void expect_entry_error(struct fixture *f, size_t i, size_t field, uint64_t value, int width)
{
	uint8_t *c = copy_bytes(f);
	uint8_t *e = c + footer_offset(f) + i * BKR_PACK_ENTRY_SIZE;
	if (width == 8)
		bkr_put_u64(e + field, value);
	else if (width == 4)
		bkr_put_u32(e + field, (uint32_t)value);
	else
		e[field] = (uint8_t)value;
	reseal(c, f->size);
	expect_footer_error(f, c, f->size, BKR_ECORRUPT);
	free(c);
}

static void test_bad_entries(void **state)
{
	struct fixture *f = *state;
	uint64_t fo = footer_offset(f);

	assert_int_equal(open_footer(f, f->pack, NULL), 0);
	/* Copies: every failed footer read below replaces f->entries. */
	const bkr_pack_entry last = f->entries[NBLOBS - 1], e0 = f->entries[0], e1 = f->entries[1];
	/* Past the footer. */
	expect_entry_error(f, NBLOBS - 1, 32, fo - 10, 8);
	expect_entry_error(f, NBLOBS - 1, 32, fo, 8);
	expect_entry_error(f, NBLOBS - 1, 32, UINT64_MAX - 8, 8);
	/* stored length running past the footer. */
	expect_entry_error(f, NBLOBS - 1, 40, last.stored_len + 1, 4);
	/* Overlapping the previous blob. */
	expect_entry_error(f, 1, 32, e0.offset + 1, 8);
	/* Lengths over BKR_BLOB_MAX. */
	expect_entry_error(f, 0, 40, (uint64_t)BKR_BLOB_MAX + 1, 4);
	expect_entry_error(f, 0, 44, (uint64_t)BKR_BLOB_MAX + 1, 4);
	expect_entry_error(f, 0, 44, UINT32_MAX, 4);
	/* Unknown type, reserved flag, raw blob with unequal lengths. */
	expect_entry_error(f, 0, 48, 7, 1);
	expect_entry_error(f, 0, 49, 0x80, 1);
	expect_entry_error(f, 1, 44, e1.raw_len - 1, 4);
}

/*
 * A virtual pack of @p size bytes, all zeros (a sparse file's hole) but for
 * its last @p tail_len bytes (a forged footer and trailer): the footer reader
 * must judge it by reading no more than a piece of it at once.
 */
struct sparse_pack {
	uint64_t size;
	const uint8_t *tail;
	size_t tail_len;
	size_t largest; /**< the largest read asked for */
};

static int sparse_read(void *ctx, void *buf, size_t len, uint64_t off)
{
	struct sparse_pack *p = ctx;
	uint64_t tail_at = p->size - p->tail_len;
	if (len > p->largest)
		p->largest = len;
	assert_true(off <= p->size && len <= p->size - off);
	memset(buf, 0, len);
	for (size_t i = 0; i < len; i++)
		if (off + i >= tail_at)
			((uint8_t *)buf)[i] = p->tail[off + i - tail_at];
	return 0;
}

/* A plain trailer of @p count entries at @p footer_off (its checksum zeros: the caller's). */
static void forge_trailer(uint8_t t[BKR_PACK_TRAILER_SIZE], uint32_t count, uint64_t footer_off)
{
	memset(t, 0, BKR_PACK_TRAILER_SIZE);
	memcpy(t, BKR_PACK_MAGIC, 8);
	bkr_put_u32(t + 8, BKR_PACK_VERSION);
	bkr_put_u32(t + 12, count);
	bkr_put_u64(t + 16, footer_off);
}

static int read_sparse(struct sparse_pack *p, const char *what)
{
	bkr_pack_entry *e = (bkr_pack_entry *)0x1;
	size_t n = 99;
	int err = bkr_pack_read_footer_from(NULL, NULL, sparse_read, p, p->size, what, &e, &n);
	if (err == 0)
		free(e);
	else
		assert_null(e);
	return err;
}

static void test_forged_footer_bounds(void **state)
{
	uint8_t tail[BKR_PACK_ENTRY_SIZE + BKR_PACK_TRAILER_SIZE], *t = tail + BKR_PACK_ENTRY_SIZE;
	struct sparse_pack p = { 0 };
	uint32_t count;
	uint64_t off;
	bkr_id sum;
	(void)state;

	/* A trailer claiming 4M entries (a footer of 224 MiB, all zeros) over a
	 * blob area that could hold them: refused after one piece of it, never
	 * allocated or read whole. */
	count = 1u << 22;
	off = (uint64_t)count * BKR_BLOB_HEADER_SIZE;
	forge_trailer(t, count, off);
	p = (struct sparse_pack){ off + (uint64_t)count * BKR_PACK_ENTRY_SIZE + BKR_PACK_TRAILER_SIZE,
				  tail + BKR_PACK_ENTRY_SIZE, BKR_PACK_TRAILER_SIZE, 0 };
	assert_int_equal(read_sparse(&p, "zeros.pack"), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "zeros.pack: entry 1 "));
	assert_true(p.largest <= 1u << 20);

	/* More entries than the blob area holds (each blob takes its 16-byte
	 * header): refused from the trailer alone. */
	count = 1000;
	off = (uint64_t)count * BKR_BLOB_HEADER_SIZE - 1;
	forge_trailer(t, count, off);
	p = (struct sparse_pack){ off + (uint64_t)count * BKR_PACK_ENTRY_SIZE + BKR_PACK_TRAILER_SIZE,
				  tail + BKR_PACK_ENTRY_SIZE, BKR_PACK_TRAILER_SIZE, 0 };
	assert_int_equal(read_sparse(&p, "crowded.pack"), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "crowded.pack: 1000 entries in a blob area of 15999 bytes"));
	assert_int_equal(p.largest, BKR_PACK_TRAILER_SIZE);

	/* A blob area larger than a pack holds (index offsets are 32-bit), with
	 * one valid entry and a valid checksum: refused. */
	memset(tail, 0, BKR_PACK_ENTRY_SIZE);
	tail[0] = 0xab;             /* blob id */
	bkr_put_u32(tail + 40, 10); /* stored = raw = 10: a raw data blob at offset 0 */
	bkr_put_u32(tail + 44, 10);
	off = (uint64_t)UINT32_MAX + 1;
	forge_trailer(t, 1, off);
	bkr_sha256(tail, BKR_PACK_ENTRY_SIZE + 32, &sum);
	memcpy(t + 32, sum.b, BKR_ID_SIZE);
	p = (struct sparse_pack){ off + sizeof(tail), tail, sizeof(tail), 0 };
	assert_int_equal(read_sparse(&p, "big.pack"), BKR_ECORRUPT);
	assert_non_null(strstr(bkr_error_message(), "big.pack: 1 entries in a blob area of 4294967296 bytes"));
	/* the same at the bound reads */
	off = UINT32_MAX;
	forge_trailer(t, 1, off);
	bkr_sha256(tail, BKR_PACK_ENTRY_SIZE + 32, &sum);
	memcpy(t + 32, sum.b, BKR_ID_SIZE);
	p = (struct sparse_pack){ off + sizeof(tail), tail, sizeof(tail), 0 };
	assert_int_equal(read_sparse(&p, "max.pack"), 0);
}

static void test_header_disagrees(void **state)
{
	struct fixture *f = *state;
	struct {
		size_t off;
		uint8_t val;
	} mods[] = {
		{ 0, 2 },    /* header version */
		{ 1, 0x03 }, /* flags: encrypted */
		{ 2, 1 },    /* type tree in a data pack */
		{ 3, 1 },    /* reserved */
		{ 4, 0x01 }, /* stored length low byte */
		{ 8, 0x01 }, /* raw length low byte */
		{ 12, 0 },   /* id prefix */
	};
	int fd;

	assert_int_equal(open_footer(f, f->pack, NULL), 0);
	const bkr_pack_entry *e = &f->entries[0];
	uint8_t *out = malloc(e->raw_len + 1); /* one call below expects raw_len + 1 */
	assert_non_null(out);
	for (size_t i = 0; i < sizeof(mods) / sizeof(mods[0]); i++) {
		uint8_t *c = copy_bytes(f);
		uint8_t *h = c + e->offset;
		h[mods[i].off] = h[mods[i].off] == mods[i].val ? (uint8_t)(mods[i].val + 1) : mods[i].val;
		write_file(f->bad, c, f->size);
		free(c);
		fd = open(f->bad, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(bkr_pack_read_blob(NULL, fd, f->bad, &e->id, e->offset, e->stored_len,
						    e->raw_len, e->type, out), BKR_ECORRUPT);
		assert_non_null(strstr(bkr_error_message(), "header"));
		close(fd);
	}
	/* Entry values that disagree with an intact header. */
	fd = open(f->pack, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(bkr_pack_read_blob(NULL, fd, f->pack, &e->id, e->offset, e->stored_len - 1,
					    e->raw_len, e->type, out), BKR_ECORRUPT);
	assert_int_equal(bkr_pack_read_blob(NULL, fd, f->pack, &e->id, e->offset, e->stored_len,
					    e->raw_len + 1, e->type, out), BKR_ECORRUPT);
	assert_int_equal(bkr_pack_read_blob(NULL, fd, f->pack, &e->id, f->entries[1].offset, e->stored_len,
					    e->raw_len, e->type, out), BKR_ECORRUPT);
	assert_int_equal(bkr_pack_read_blob(NULL, fd, f->pack, &e->id, e->offset, BKR_BLOB_MAX + 1,
					    e->raw_len, e->type, out), BKR_ECORRUPT);
	assert_int_equal(bkr_pack_read_blob(NULL, fd, f->pack, &e->id, UINT64_MAX - 4, e->stored_len,
					    e->raw_len, e->type, out), BKR_ECORRUPT);
	close(fd);
	free(out);
}

static void test_free_without_finish(void **state)
{
	struct fixture *f = *state;
	bkr_pack_writer *w = NULL;

	assert_int_equal(bkr_pack_writer_new(&w, f->s, "tmp", BKR_BLOB_TREE, NULL), 0);
	assert_int_equal(bkr_pack_writer_add(w, &f->blobs[3].id, 0, f->blobs[3].data, 1, 1), 0);
	assert_int_equal(bkr_pack_writer_size(w), BKR_BLOB_HEADER_SIZE + 1);
	assert_int_equal(count_files(f->tmp, ".tmp-"), 1);
	bkr_pack_writer_free(w);
	assert_int_equal(count_files(f->tmp, ".tmp-"), 0);
	bkr_pack_writer_free(NULL);
	/* Bad arguments to add. */
	assert_int_equal(bkr_pack_writer_new(&w, f->s, "tmp", BKR_BLOB_DATA, NULL), 0);
	assert_int_equal(bkr_pack_writer_add(w, &f->blobs[3].id, 0, "ab", 2, 1), BKR_EINVAL);
	assert_int_equal(bkr_pack_writer_add(w, &f->blobs[3].id, 0x02, "a", 1, 1), BKR_EINVAL);
	assert_int_equal(bkr_pack_writer_add(w, &f->blobs[3].id, 1, "a", 1, BKR_BLOB_MAX + 1),
			 BKR_EINVAL);
	assert_int_equal(bkr_pack_writer_count(w), 0);
	bkr_pack_writer_free(w);
	assert_int_equal(count_files(f->tmp, ".tmp-"), 0);
	/* A writer outside the store fails cleanly. */
	assert_int_equal(bkr_pack_writer_new(&w, f->s, "../nope", BKR_BLOB_DATA, NULL), BKR_EINVAL);
	assert_null(w);
}

/** Run a writer with BKR_FAULT=@p spec set just before @p when (0 = add, 1 = finish). */
static void fault_case(struct fixture *f, const char *spec, int when)
{
	bkr_pack_writer *w = NULL;
	bkr_pack_id pid;
	size_t before = count_tree(f->root);
	int err = 0;

	assert_int_equal(bkr_pack_writer_new(&w, f->s, "tmp", BKR_BLOB_DATA, NULL), 0);
	if (when == 0) {
		setenv("BKR_FAULT", spec, 1);
		bkr_io_fault_reset();
	}
	for (int i = 0; i < NBLOBS && err == 0; i++)
		err = bkr_pack_writer_add(w, &f->blobs[i].id, 0, f->blobs[i].data,
					  (uint32_t)f->blobs[i].len, (uint32_t)f->blobs[i].len);
	if (when == 0) {
		assert_int_equal(err, BKR_EIO);
		/* The writer is abandoned: the temporary is gone and finish refuses. */
		assert_int_equal(count_files(f->tmp, ".tmp-"), 0);
		assert_int_not_equal(bkr_pack_writer_finish(w, "data", &pid), 0);
	} else {
		assert_int_equal(err, 0);
		setenv("BKR_FAULT", spec, 1);
		bkr_io_fault_reset();
		err = bkr_pack_writer_finish(w, "data", &pid);
		assert_true(err == BKR_EIO || err == BKR_ENOSPC);
		assert_non_null(strstr(bkr_error_message(), "injected fault"));
		/* Finishing again is refused, not half-done. */
		assert_int_not_equal(bkr_pack_writer_finish(w, "data", &pid), 0);
	}
	bkr_pack_writer_free(w);
	unsetenv("BKR_FAULT");
	bkr_io_fault_reset();
	assert_int_equal(count_tree(f->root), before);
	assert_int_equal(count_files(f->tmp, ".tmp-"), 0);
}

static void test_fault_injection(void **state)
{
	struct fixture *f = *state;

	fault_case(f, "write:1", 1);        /* footer write */
	fault_case(f, "write:1:enospc", 1); /* disk full at the footer */
	fault_case(f, "fsync:1", 1);        /* fsync of the pack */
	fault_case(f, "rename:1", 1);       /* publish */
	fault_case(f, "write:4", 0);        /* second blob's payload */
	fault_case(f, "write:1", 0);        /* first header */
}

/* A process killed before the pack is fsynced leaves no final pack. */
static void test_crash_before_publish(void **state)
{
	struct fixture *f = *state;
	size_t before = count_tree(f->root);
	pid_t pid = fork();
	int status = 0;

	assert_true(pid >= 0);
	if (pid == 0) {
		bkr_pack_writer *w = NULL;
		bkr_pack_id id;
		if (bkr_pack_writer_new(&w, f->s, "tmp", BKR_BLOB_DATA, NULL) < 0 ||
		    bkr_pack_writer_add(w, &f->blobs[1].id, 0, f->blobs[1].data,
					(uint32_t)f->blobs[1].len, (uint32_t)f->blobs[1].len) < 0)
			_exit(2);
		setenv("BKR_FAULT", "fsync:1:crash", 1);
		bkr_io_fault_reset();
		bkr_pack_writer_finish(w, "data", &id);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_int_equal(count_tree(f->root), before);
	/* Only a ".tmp-*" leftover, which readers never look at. */
	assert_int_equal(count_files(f->tmp, ".tmp-"), 1);
}

static void test_pack_path(void **state)
{
	bkr_pack_id id;
	char out[128], small[20];

	memset(id.b, 0xab, sizeof(id.b));
	id.b[0] = 0x01;
	assert_int_equal(bkr_pack_path(out, sizeof(out), "/r/data", &id), 0);
	assert_int_equal(strlen(out), strlen("/r/data/01/") + 32 + 5);
	assert_int_equal(strncmp(out, "/r/data/01/01abababab", 21), 0);
	assert_string_equal(out + strlen(out) - 7, "ab.pack");
	assert_int_equal(bkr_pack_path(small, sizeof(small), "/r/data", &id), BKR_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_blob_encode_decode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_zstd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_sealed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_seal_add, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_blob_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_payload_bit_flip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_footer_bit_flip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_magic_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count_offset_overflow, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_entries, setup, teardown),
		cmocka_unit_test(test_forged_footer_bounds),
		cmocka_unit_test_setup_teardown(test_header_disagrees, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_without_finish, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_injection, setup, teardown),
		cmocka_unit_test(test_pack_path),
	};
	/*
	 * The crash test runs first, before anything has compressed: the killed
	 * child then holds no codec state that valgrind would report as lost.
	 */
	const struct CMUnitTest crash_tests[] = {
		cmocka_unit_test_setup_teardown(test_crash_before_publish, setup_raw, teardown),
	};
	int failed = cmocka_run_group_tests_name("pack crash", crash_tests, NULL, NULL);
	return failed + cmocka_run_group_tests_name("pack", tests, NULL, NULL);
}
